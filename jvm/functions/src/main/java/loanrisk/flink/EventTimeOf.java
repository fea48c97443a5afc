package loanrisk.flink;

import java.time.Instant;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code event_time_of(payload, ingested_at, spec)}: the rowtime of a raw message for the source's
 * watermark; epoch 0 when missing, unparseable or later than ingested_at plus the spec's future
 * tolerance (what parse_event dead-letters as future_event_time), so it can never advance the watermark.
 */
public class EventTimeOf extends ScalarFunction {

    public @DataTypeHint("TIMESTAMP_LTZ(3)") Instant eval(String payload,
                                                          @DataTypeHint("TIMESTAMP_LTZ(3)") Instant ingestedAt,
                                                          String spec) {
        return EventValidator.eventTime(EventSpec.of(spec), payload, EventValidator.nowMs(ingestedAt));
    }
}
