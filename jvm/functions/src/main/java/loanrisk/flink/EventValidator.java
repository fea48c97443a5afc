package loanrisk.flink;

import java.io.IOException;
import java.math.BigInteger;
import java.time.DateTimeException;
import java.time.Instant;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.temporal.ChronoUnit;
import java.util.regex.Pattern;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;

/**
 * Parses a raw message once and names the first contract rule it breaks, in the order of
 * contracts/validate.py (the Python reference, which tests compare this against):
 * too_large, invalid_json, missing:F, type:F, choice:F, range:F, future_event_time, past_event_time.
 */
public final class EventValidator {

    /** The outcome: a reason (null when valid) and the typed field values (in contract order). */
    public static final class Result {
        public final String reason;
        public final Object[] values;

        Result(String reason, Object[] values) {
            this.reason = reason;
            this.values = values;
        }
    }

    public static final String TOO_LARGE = "too_large";
    public static final String INVALID_JSON = "invalid_json";
    public static final String FUTURE_EVENT_TIME = "future_event_time";
    public static final String PAST_EVENT_TIME = "past_event_time";

    private static final JsonFactory FACTORY = new JsonFactory();
    private static final Object NESTED = new Object();
    private static final Pattern DATE = Pattern.compile("[0-9]{4}-[0-9]{2}-[0-9]{2}");
    private static final Pattern TIMESTAMP = Pattern.compile(
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})");
    private static final BigInteger LONG_MIN = BigInteger.valueOf(Long.MIN_VALUE);
    private static final BigInteger LONG_MAX = BigInteger.valueOf(Long.MAX_VALUE);

    private EventValidator() {
    }

    /**
     * "Now" for the future-time rule: the message's Kafka timestamp, or the wall clock when it has none
     * (as contracts/validate.py defaults {@code now}); parse_event and event_time_of both take it from here.
     */
    public static long nowMs(Instant ingestedAt) {
        return ingestedAt == null ? System.currentTimeMillis() : ingestedAt.toEpochMilli();
    }

    /**
     * Whether {@code t} is later than {@code ingestedMs} plus the spec's future tolerance, to the nanosecond
     * as contracts/validate.py compares: a fraction of a millisecond past the limit is in the future too.
     */
    static boolean isFuture(EventSpec spec, Instant t, long ingestedMs) {
        long limitMs = ingestedMs + spec.futureToleranceMs;
        long ms = t.toEpochMilli();
        return ms > limitMs || (ms == limitMs && t.getNano() % 1_000_000 != 0);
    }

    /** Validate {@code payload} against {@code spec}; {@code ingestedMs} is the broker timestamp ("now"). */
    public static Result validate(EventSpec spec, String payload, long ingestedMs) {
        int n = spec.fields.size();
        Object[] values = new Object[n];
        if (payload == null) {
            return new Result(INVALID_JSON, values);
        }
        if (payload.length() > spec.maxChars && payload.codePointCount(0, payload.length()) > spec.maxChars) {
            return new Result(TOO_LARGE, values);
        }
        Object[] raw = new Object[n];
        if (!readObject(spec, payload, raw)) {
            return new Result(INVALID_JSON, values);
        }
        for (int i = 0; i < n; i++) {
            EventSpec.FieldSpec f = spec.fields.get(i);
            if (!f.nullable && raw[i] == null) {
                return new Result("missing:" + f.name, values);
            }
        }
        for (int i = 0; i < n; i++) {
            if (raw[i] != null) {
                values[i] = typed(spec.fields.get(i).type, raw[i]);
                if (values[i] == null) {
                    return new Result("type:" + spec.fields.get(i).name, values);
                }
            }
        }
        for (int i = 0; i < n; i++) {
            EventSpec.FieldSpec f = spec.fields.get(i);
            if (f.choices != null && values[i] != null && !f.choices.contains(values[i].toString())) {
                return new Result("choice:" + f.name, values);
            }
        }
        for (int i = 0; i < n; i++) {
            EventSpec.FieldSpec f = spec.fields.get(i);
            if (values[i] instanceof Number && !inRange(f, ((Number) values[i]).doubleValue())) {
                return new Result("range:" + f.name, values);
            }
        }
        Instant eventTime = (Instant) values[spec.eventTimeIndex];
        if (eventTime != null && isFuture(spec, eventTime, ingestedMs)) {
            return new Result(FUTURE_EVENT_TIME, values);
        }
        if (eventTime != null && eventTime.toEpochMilli() < spec.pastLimitMs) {
            return new Result(PAST_EVENT_TIME, values);
        }
        return new Result(null, values);
    }

    /**
     * The event time for the source's watermark: the payload's event time when it parses and is not
     * later than {@code ingestedMs + tolerance}, else epoch 0, so an event {@link #validate} dead-letters
     * as future_event_time (by the same {@link #isFuture}) never advances the watermark.
     */
    public static Instant eventTime(EventSpec spec, String payload, long ingestedMs) {
        String name = spec.fields.get(spec.eventTimeIndex).name;
        String text = null;
        if (payload != null && payload.length() <= spec.maxChars) {
            try (JsonParser p = FACTORY.createParser(payload)) {
                if (p.nextToken() == JsonToken.START_OBJECT) {
                    while (p.nextToken() == JsonToken.FIELD_NAME) {
                        boolean wanted = name.equals(p.currentName());
                        JsonToken v = p.nextToken();
                        if (wanted && v == JsonToken.VALUE_STRING) {
                            text = p.getText();  // the first occurrence; a repeated key is rare and dead-lettered
                            break;
                        }
                        p.skipChildren();
                    }
                }
            } catch (IOException | RuntimeException e) {
                text = null;
            }
        }
        Instant t = text == null ? null : timestamp(text);
        if (t == null || isFuture(spec, t, ingestedMs)) {
            return Instant.EPOCH;
        }
        return t.truncatedTo(ChronoUnit.MILLIS);
    }

    /** Fill {@code raw} with each contract field's JSON scalar; false when the text is not a strict JSON object. */
    private static boolean readObject(EventSpec spec, String payload, Object[] raw) {
        try (JsonParser p = FACTORY.createParser(payload)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return false;
            }
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                Integer i = spec.index.get(p.currentName());
                JsonToken v = p.nextToken();
                if (v == JsonToken.START_OBJECT || v == JsonToken.START_ARRAY) {
                    p.skipChildren();
                    if (i != null) {
                        raw[i] = NESTED;
                    }
                    continue;
                }
                if (i == null) {
                    continue;
                }
                switch (v) {
                    case VALUE_STRING:
                        raw[i] = p.getText();
                        break;
                    case VALUE_NUMBER_INT:
                        raw[i] = p.getNumberType() == JsonParser.NumberType.BIG_INTEGER
                                ? p.getBigIntegerValue() : (Object) p.getLongValue();
                        break;
                    case VALUE_NUMBER_FLOAT:
                        raw[i] = p.getDoubleValue();
                        break;
                    case VALUE_TRUE:
                        raw[i] = Boolean.TRUE;
                        break;
                    case VALUE_FALSE:
                        raw[i] = Boolean.FALSE;
                        break;
                    default:
                        raw[i] = null;  // JSON null: the same as absent
                }
            }
            return t == JsonToken.END_OBJECT && p.nextToken() == null;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /** The raw JSON scalar as the field's Flink value, or null when its JSON type (or width) is wrong. */
    private static Object typed(String type, Object raw) {
        switch (type) {
            case "string":
                return raw instanceof String ? raw : null;
            case "int":
                if (raw instanceof Long && (Long) raw >= Integer.MIN_VALUE && (Long) raw <= Integer.MAX_VALUE) {
                    return ((Long) raw).intValue();
                }
                return null;
            case "long":
                if (raw instanceof BigInteger) {
                    BigInteger b = (BigInteger) raw;
                    return b.compareTo(LONG_MIN) >= 0 && b.compareTo(LONG_MAX) <= 0 ? b.longValue() : null;
                }
                return raw instanceof Long ? raw : null;
            case "double":
                return raw instanceof Number ? ((Number) raw).doubleValue() : null;
            case "boolean":
                return raw instanceof Boolean ? raw : null;
            case "date":
                return raw instanceof String ? date((String) raw) : null;
            case "timestamp":
                return raw instanceof String ? timestamp((String) raw) : null;
            default:
                return null;
        }
    }

    private static boolean inRange(EventSpec.FieldSpec f, double v) {
        if (Double.isNaN(v) || Double.isInfinite(v)) {
            return false;
        }
        return !(f.minimum != null && v < f.minimum) && !(f.maximum != null && v > f.maximum);
    }

    /** An ISO date (yyyy-mm-dd, year 1 or later), else null. */
    static LocalDate date(String s) {
        if (s.length() == 10 && s.charAt(4) == '-' && s.charAt(7) == '-') {
            int year = digits(s, 0, 4);
            int month = digits(s, 5, 2);
            int day = digits(s, 8, 2);
            if (year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= 28) {
                return LocalDate.of(year, month, day);  // the fast path: certainly valid
            }
        }
        if (!DATE.matcher(s).matches()) {
            return null;
        }
        try {
            LocalDate d = LocalDate.parse(s);
            return d.getYear() >= 1 ? d : null;
        } catch (DateTimeException e) {
            return null;
        }
    }

    /** An ISO-8601 instant with an explicit zone (Z or +hh:mm), to microseconds, else null. */
    static Instant timestamp(String s) {
        Instant fast = commonTimestamp(s);
        if (fast != null) {
            return fast;
        }
        if (!TIMESTAMP.matcher(s).matches()) {
            return null;
        }
        try {
            OffsetDateTime t = OffsetDateTime.parse(s);
            return t.getYear() >= 1 ? t.toInstant().truncatedTo(ChronoUnit.MICROS) : null;
        } catch (DateTimeException e) {
            return null;
        }
    }

    /**
     * The fast path of {@link #timestamp}: {@code yyyy-mm-ddThh:mm:ss[.f{1,9}](Z|+hh:mm)} with every field
     * certainly in range (day at most 28, offset below 18 h), else null and the strict parser decides.
     * It gives the strict parser's value without OffsetDateTime.parse, which is costly and would run for
     * nearly every event.
     */
    static Instant commonTimestamp(String s) {
        int n = s.length();
        if (n < 20 || n > 35 || s.charAt(4) != '-' || s.charAt(7) != '-' || s.charAt(10) != 'T'
                || s.charAt(13) != ':' || s.charAt(16) != ':') {
            return null;
        }
        int year = digits(s, 0, 4);
        int month = digits(s, 5, 2);
        int day = digits(s, 8, 2);
        int hour = digits(s, 11, 2);
        int minute = digits(s, 14, 2);
        int second = digits(s, 17, 2);
        if (year < 1 || month < 1 || month > 12 || day < 1 || day > 28 || hour < 0 || hour > 23
                || minute < 0 || minute > 59 || second < 0 || second > 59) {
            return null;
        }
        int i = 19;
        long nanos = 0;
        if (s.charAt(i) == '.') {
            int start = ++i;
            while (i < n && s.charAt(i) >= '0' && s.charAt(i) <= '9') {
                nanos = nanos * 10 + (s.charAt(i) - '0');
                i++;
            }
            int len = i - start;
            if (len < 1 || len > 9) {
                return null;
            }
            for (int k = len; k < 9; k++) {
                nanos *= 10;
            }
        }
        int offsetSeconds;
        if (i == n - 1 && s.charAt(i) == 'Z') {
            offsetSeconds = 0;
        } else if (i == n - 6 && (s.charAt(i) == '+' || s.charAt(i) == '-') && s.charAt(i + 3) == ':') {
            int oh = digits(s, i + 1, 2);
            int om = digits(s, i + 4, 2);
            if (oh < 0 || oh > 17 || om < 0 || om > 59) {
                return null;
            }
            offsetSeconds = (s.charAt(i) == '-' ? -1 : 1) * (oh * 3600 + om * 60);
        } else {
            return null;
        }
        long epochSecond = LocalDate.of(year, month, day).toEpochDay() * 86_400L
                + hour * 3600L + minute * 60L + second - offsetSeconds;
        return Instant.ofEpochSecond(epochSecond, nanos / 1000 * 1000);
    }

    /** The decimal number in {@code s[from, from + len)}, or -1 when any of its characters is not 0-9. */
    private static int digits(String s, int from, int len) {
        int v = 0;
        for (int i = from; i < from + len; i++) {
            char c = s.charAt(i);
            if (c < '0' || c > '9') {
                return -1;
            }
            v = v * 10 + (c - '0');
        }
        return v;
    }
}
