package loanrisk.flink;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;

/**
 * One event contract as the validator needs it, parsed from the JSON that contracts/flink_sql.py
 * derives from contracts/events.py (the single definition of every event schema).
 */
public final class EventSpec {

    /** One field: name, logical type (string|int|long|double|boolean|date|timestamp) and its rules. */
    public static final class FieldSpec {
        public final String name;
        public final String type;
        public final boolean nullable;
        public final Double minimum;
        public final Double maximum;
        public final Set<String> choices;
        /** Whether the field can carry a person's data (pseudonymised before any sink, redacted in dead letters). */
        public final boolean pii;

        FieldSpec(String name, String type, boolean nullable, Double minimum, Double maximum, Set<String> choices,
                  boolean pii) {
            this.name = name;
            this.type = type;
            this.nullable = nullable;
            this.minimum = minimum;
            this.maximum = maximum;
            this.choices = choices;
            this.pii = pii;
        }
    }

    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final Map<String, EventSpec> CACHE = new ConcurrentHashMap<>();

    public final List<FieldSpec> fields;
    public final Map<String, Integer> index;
    /** Fields by lower-cased name: the redaction treats {@code "Full_Name"} as {@code full_name}. */
    public final Map<String, FieldSpec> byLowerName;
    public final int eventTimeIndex;
    public final int maxChars;
    public final long futureToleranceMs;
    public final long pastLimitMs;

    private EventSpec(List<FieldSpec> fields, String eventTimeField, int maxChars, long futureToleranceMs,
                      long pastLimitMs) {
        this.fields = fields;
        this.index = new HashMap<>();
        this.byLowerName = new HashMap<>();
        for (int i = 0; i < fields.size(); i++) {
            index.put(fields.get(i).name, i);
            byLowerName.put(fields.get(i).name.toLowerCase(Locale.ROOT), fields.get(i));
        }
        Integer et = index.get(eventTimeField);
        if (et == null || !"timestamp".equals(fields.get(et).type)) {
            throw new IllegalArgumentException("event time field '" + eventTimeField + "' is not a timestamp field");
        }
        if (futureToleranceMs < 0) {
            throw new IllegalArgumentException("future_tolerance_ms must not be negative, got " + futureToleranceMs);
        }
        this.eventTimeIndex = et;
        this.maxChars = maxChars;
        this.futureToleranceMs = futureToleranceMs;
        this.pastLimitMs = pastLimitMs;
    }

    /** The spec for {@code json}, parsed once per distinct text (the SQL passes it as a literal). */
    public static EventSpec of(String json) {
        return CACHE.computeIfAbsent(json, EventSpec::parse);
    }

    private static EventSpec parse(String json) {
        try {
            JsonNode root = MAPPER.readTree(json);
            List<FieldSpec> fields = new ArrayList<>();
            for (JsonNode f : root.get("fields")) {
                Set<String> choices = null;
                if (f.hasNonNull("choices")) {
                    choices = new HashSet<>();
                    for (JsonNode c : f.get("choices")) {
                        choices.add(c.asText());
                    }
                }
                fields.add(new FieldSpec(f.get("name").asText(), f.get("type").asText(),
                        f.path("nullable").asBoolean(false),
                        f.hasNonNull("minimum") ? f.get("minimum").asDouble() : null,
                        f.hasNonNull("maximum") ? f.get("maximum").asDouble() : null, choices,
                        f.path("pii").asBoolean(false)));
            }
            return new EventSpec(fields, root.get("event_time_field").asText(), root.get("max_chars").asInt(),
                    root.get("future_tolerance_ms").asLong(), root.get("past_limit_ms").asLong());
        } catch (Exception e) {
            throw new IllegalArgumentException("invalid event spec: " + e.getMessage(), e);
        }
    }
}
