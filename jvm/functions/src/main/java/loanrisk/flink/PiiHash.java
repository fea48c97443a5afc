package loanrisk.flink;

import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code pii_hash(value)}: the keyed pseudonym of a personal-data field (see {@link Pseudonymizer}); NULL
 * stays NULL. The job's typed projections apply it to every field the contracts mark as PII.
 */
public class PiiHash extends ScalarFunction {

    private transient Pseudonymizer pseudonymizer;

    @Override
    public void open(FunctionContext context) {
        pseudonymizer = Pseudonymizer.fromJobParameters(context);
    }

    public String eval(String value) {
        return pseudonymizer.pseudonym(value);
    }
}
