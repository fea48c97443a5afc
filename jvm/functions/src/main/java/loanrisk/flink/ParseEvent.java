package loanrisk.flink;

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.inference.InputTypeStrategies;
import org.apache.flink.table.types.inference.TypeInference;
import org.apache.flink.types.Row;

/**
 * {@code parse_event(payload, ingested_at, spec)}: one pass over a raw Kafka message, returning
 * {@code ROW<reason STRING, ingested_at TIMESTAMP_LTZ(3), <contract fields typed>>} (reason NULL when
 * the event is valid). ingested_at rides inside the row so the deduplication downstream reads only
 * (event_id, e, event_time) whatever its consumers need, and the planner can share it between them.
 *
 * <p>It is declared non-deterministic on purpose: the planner then keeps it in one projection
 * instead of inlining it into every field reference, so each message is parsed once per branch
 * (JSON_VALUE re-parses the payload on every call).
 */
public class ParseEvent extends ScalarFunction {

    public Row eval(String payload, Instant ingestedAt, String spec) {
        EventValidator.Result r = EventValidator.validate(EventSpec.of(spec), payload,
                EventValidator.nowMs(ingestedAt));
        Object[] out = new Object[r.values.length + 2];
        out[0] = r.reason;
        out[1] = ingestedAt;
        if (r.reason == null) {
            System.arraycopy(r.values, 0, out, 2, r.values.length);
        }
        return Row.of(out);
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        return TypeInference.newBuilder()
                .inputTypeStrategy(InputTypeStrategies.sequence(
                        InputTypeStrategies.explicit(DataTypes.STRING()),
                        InputTypeStrategies.explicit(DataTypes.TIMESTAMP_LTZ(3)),
                        InputTypeStrategies.and(InputTypeStrategies.LITERAL,
                                InputTypeStrategies.explicit(DataTypes.STRING()))))
                .outputTypeStrategy(call -> {
                    String spec = call.getArgumentValue(2, String.class)
                            .orElseThrow(() -> call.newValidationError("parse_event: the spec must be a string literal"));
                    return Optional.of(rowType(EventSpec.of(spec)));
                })
                .build();
    }

    /** ROW(reason, ingested_at, one column per contract field with its Flink type). */
    static DataType rowType(EventSpec spec) {
        List<DataTypes.Field> fields = new ArrayList<>();
        fields.add(DataTypes.FIELD("reason", DataTypes.STRING()));
        fields.add(DataTypes.FIELD("ingested_at", DataTypes.TIMESTAMP_LTZ(3)));
        for (EventSpec.FieldSpec f : spec.fields) {
            fields.add(DataTypes.FIELD(f.name, flinkType(f.type)));
        }
        return DataTypes.ROW(fields).bridgedTo(Row.class);
    }

    static DataType flinkType(String type) {
        switch (type) {
            case "string": return DataTypes.STRING();
            case "int": return DataTypes.INT();
            case "long": return DataTypes.BIGINT();
            case "double": return DataTypes.DOUBLE();
            case "boolean": return DataTypes.BOOLEAN();
            case "date": return DataTypes.DATE();
            case "timestamp": return DataTypes.TIMESTAMP_LTZ(6);
            default: throw new IllegalArgumentException("unknown contract type " + type);
        }
    }
}
