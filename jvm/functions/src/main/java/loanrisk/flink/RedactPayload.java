package loanrisk.flink;

import java.util.Optional;

import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.types.inference.InputTypeStrategies;
import org.apache.flink.table.types.inference.TypeInference;
import org.apache.flink.table.types.inference.TypeStrategies;

/**
 * {@code redact_payload(payload, spec)}: a dead letter's payload as it may be stored, redacted by the
 * contract's fields (see {@link Redactor}); the spec is the same literal parse_event reads.
 */
public class RedactPayload extends ScalarFunction {

    private transient Pseudonymizer pseudonymizer;

    @Override
    public void open(FunctionContext context) {
        pseudonymizer = Pseudonymizer.fromJobParameters(context);
    }

    public String eval(String payload, String spec) {
        return Redactor.redact(EventSpec.of(spec), pseudonymizer, payload);
    }

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        return TypeInference.newBuilder()
                .inputTypeStrategy(InputTypeStrategies.sequence(
                        InputTypeStrategies.explicit(DataTypes.STRING()),
                        InputTypeStrategies.and(InputTypeStrategies.LITERAL,
                                InputTypeStrategies.explicit(DataTypes.STRING()))))
                .outputTypeStrategy(TypeStrategies.explicit(DataTypes.STRING().notNull()))
                .build();
    }
}
