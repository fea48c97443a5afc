"""Entry points and parameters of the Flink jobs: `run_sql.py` (submitted with `flink run -py`) and the modules
it loads run in the Flink client's Python (stdlib and PyFlink only); `params.py`, `submit.py` and `sql_client.py`
build, submit and query the risk job from the platform environment.
"""
