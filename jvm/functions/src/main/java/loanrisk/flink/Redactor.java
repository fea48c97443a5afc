package loanrisk.flink;

import java.util.Iterator;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.DeserializationFeature;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ArrayNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.JsonNodeFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.TextNode;

/**
 * What a dead letter may show of its payload: enough to see why the event broke its contract, nothing of a
 * person.
 *
 * <p>A payload that parses as a JSON object is rebuilt field by field from the contract. A PII field
 * becomes its pseudonym (the lake column's value, so a data-protection officer can link the two) or
 * {@code "<pii>"} when it holds an array or object. Numbers, booleans and nulls stay as they are, so
 * amounts, epoch milliseconds and nanosecond fractions show what a {@code type:} or {@code range:} reason
 * is about. A string of a known field stays when it has the shape of its field (one token for a string
 * field: an id or a choice; a number or a time for the others), any other text becomes
 * {@code "<text:N>"} (N characters). Every string under a field the contract does not know is text. Field
 * names match case-insensitively, after JSON unescaping, at any depth.
 *
 * <p>A payload that does not parse (truncated, single-quoted, not JSON, too large to parse) is scanned
 * as text: quoted strings that are not one token, the value after a PII field name, unquoted words that
 * are not field names, e-mail addresses and phone or account-number shaped digit runs are masked.
 * Every pattern is bounded, so a hostile payload costs linear time. The result is cut to
 * {@link #MAX_OUT} characters.
 */
final class Redactor {

    static final int MAX_OUT = 65536;
    /** The text scan reads at most this much: what it keeps of more would be cut anyway. */
    private static final int MAX_SCAN = 4 * MAX_OUT;
    private static final String PII = "<pii>";
    private static final ObjectMapper MAPPER = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .setNodeFactory(JsonNodeFactory.withExactBigDecimals(true));
    private static final Pattern TOKEN = Pattern.compile("[A-Za-z0-9_.:\\-]{0,128}");
    private static final Pattern NUMBER_OR_TIME = Pattern.compile("[+-]?[0-9][0-9 .:+\\-TtZz/,eE]{0,63}");
    private static final Pattern EMAIL = Pattern.compile("[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\\.[A-Za-z]{2,24}");
    /**
     * International (+country) and (area) phones, national ones written in groups (020 7946 0958), and runs
     * of 9 or more digits (account and phone numbers) that are not a decimal fraction (nanoseconds).
     */
    private static final Pattern NUMBER = Pattern.compile(
            "\\+[0-9][0-9 ()-]{7,40}[0-9]|\\([0-9]{2,5}\\) ?[0-9][0-9 -]{5,30}[0-9]"
            + "|(?<![0-9.])0[0-9]{2,4}[ -][0-9]{3,4}[ -]?[0-9]{3,4}(?![0-9])|(?<![0-9.])[0-9]{9,}+");
    private static final Pattern WORD = Pattern.compile("[A-Za-z][A-Za-z_]{1,63}");

    private Redactor() {
    }

    /** The redacted form of {@code payload} ("" for null). */
    static String redact(EventSpec spec, Pseudonymizer pseudonymizer, String payload) {
        if (payload == null) {
            return "";
        }
        if (payload.length() <= spec.maxChars) {
            JsonNode root = parse(payload);
            if (root != null && root.isObject()) {
                return cut(object(spec, pseudonymizer, root).toString());
            }
        }
        return cut(text(spec, payload.length() > MAX_SCAN ? payload.substring(0, MAX_SCAN) : payload));
    }

    private static JsonNode parse(String payload) {
        try {
            return MAPPER.readTree(payload);
        } catch (Exception e) {
            return null;
        }
    }

    private static ObjectNode object(EventSpec spec, Pseudonymizer p, JsonNode node) {
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        Iterator<Map.Entry<String, JsonNode>> fields = node.fields();
        int i = 0;
        while (fields.hasNext()) {
            Map.Entry<String, JsonNode> e = fields.next();
            EventSpec.FieldSpec f = spec.byLowerName.get(e.getKey().toLowerCase(Locale.ROOT));
            String name = f != null || isToken(e.getKey()) ? e.getKey() : "<key:" + i + ">";
            JsonNode v = e.getValue();
            if (f != null && f.pii) {
                out.set(name, v.isNull() ? v : v.isValueNode() ? TextNode.valueOf(p.pseudonym(v.asText())) : TextNode.valueOf(PII));
            } else if (f != null && v.isTextual()) {
                String s = v.asText();
                out.set(name, hasShapeOf(f, s) ? v : masked(s));
            } else {
                out.set(name, unknown(spec, p, v));
            }
            i++;
        }
        return out;
    }

    /** A value under a name the contract does not know, or a container where the contract wants a scalar. */
    private static JsonNode unknown(EventSpec spec, Pseudonymizer p, JsonNode v) {
        if (v.isObject()) {
            return object(spec, p, v);
        }
        if (v.isArray()) {
            ArrayNode out = JsonNodeFactory.instance.arrayNode();
            for (JsonNode item : v) {
                out.add(unknown(spec, p, item));
            }
            return out;
        }
        return v.isTextual() ? masked(v.asText()) : v;
    }

    private static boolean hasShapeOf(EventSpec.FieldSpec f, String s) {
        if ("string".equals(f.type)) {
            return isToken(s);
        }
        return NUMBER_OR_TIME.matcher(s).matches();
    }

    /** One token (an id, a choice, a field name) that is not an account or phone number. */
    private static boolean isToken(String s) {
        return TOKEN.matcher(s).matches() && !NUMBER.matcher(s).find();
    }

    private static TextNode masked(String s) {
        return TextNode.valueOf("<text:" + s.length() + ">");
    }

    /** The text scan of a payload that is not a JSON object. */
    static String text(EventSpec spec, String s) {
        StringBuilder out = new StringBuilder(Math.min(s.length(), MAX_OUT) + 16);
        int n = s.length();
        int i = 0;
        boolean piiValueNext = false;
        while (i < n) {
            char c = s.charAt(i);
            if (c == '"' || c == '\'') {
                int j = i + 1;
                while (j < n && s.charAt(j) != c) {
                    j += s.charAt(j) == '\\' ? 2 : 1;
                }
                int end = Math.min(j, n);
                String content = unescape(s.substring(i + 1, end));
                boolean closed = j < n;
                boolean isKey = closed && nextNonSpace(s, j + 1) == ':';
                out.append(c);
                if (isKey) {
                    EventSpec.FieldSpec f = spec.byLowerName.get(content.toLowerCase(Locale.ROOT));
                    out.append(f != null || isToken(content) ? content : "<key>");
                    piiValueNext = f != null && f.pii;
                } else {
                    out.append(piiValueNext ? PII : isToken(content) ? content : "<text:" + content.length() + ">");
                    piiValueNext = false;
                }
                if (closed) {
                    out.append(c);
                }
                i = closed ? j + 1 : n;
            } else {
                int j = i;
                while (j < n && s.charAt(j) != '"' && s.charAt(j) != '\'') {
                    j++;
                }
                String plain = s.substring(i, j);
                if (piiValueNext && !plain.trim().equals(":") && !plain.trim().isEmpty()) {
                    // An unquoted value after a PII name (name: value): mask up to the next separator.
                    plain = plain.replaceFirst("^(\\s*:?\\s*)[^,}\\]\\n]{1,256}", "$1" + PII);
                    piiValueNext = false;
                }
                out.append(words(spec, NUMBER.matcher(EMAIL.matcher(plain).replaceAll("<email>")).replaceAll("<number>")));
                i = j;
            }
            if (out.length() > MAX_OUT) {
                break;
            }
        }
        return out.toString();
    }

    /** Unquoted words that are neither field names, choices nor JSON literals become {@code <word>}. */
    private static String words(EventSpec spec, String plain) {
        Matcher m = WORD.matcher(plain);
        StringBuilder out = new StringBuilder(plain.length());
        int last = 0;
        while (m.find()) {
            String w = m.group();
            boolean known = spec.byLowerName.containsKey(w.toLowerCase(Locale.ROOT)) || isChoice(spec, w)
                    || w.equals("true") || w.equals("false") || w.equals("null") || w.equals("NaN")
                    || w.equals("Infinity") || w.equals("email") || w.equals("number") || w.equals("pii");
            out.append(plain, last, m.start()).append(known ? w : "<word>");
            last = m.end();
        }
        return out.append(plain, last, plain.length()).toString();
    }

    private static boolean isChoice(EventSpec spec, String w) {
        for (EventSpec.FieldSpec f : spec.fields) {
            if (f.choices != null && f.choices.contains(w)) {
                return true;
            }
        }
        return false;
    }

    private static int nextNonSpace(String s, int from) {
        for (int k = from; k < s.length(); k++) {
            if (!Character.isWhitespace(s.charAt(k))) {
                return s.charAt(k);
            }
        }
        return -1;
    }

    /** JSON string escapes decoded (\\uXXXX and \\c), so an escaped field name is still recognised. */
    private static String unescape(String s) {
        if (s.indexOf('\\') < 0) {
            return s;
        }
        StringBuilder out = new StringBuilder(s.length());
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            if (c == '\\' && k + 6 <= s.length() && s.charAt(k + 1) == 'u') {
                try {
                    out.append((char) Integer.parseInt(s.substring(k + 2, k + 6), 16));
                    k += 5;
                    continue;
                } catch (NumberFormatException e) {
                    // not an escape: kept as written
                }
            }
            if (c == '\\' && k + 1 < s.length()) {
                out.append(s.charAt(++k));
                continue;
            }
            out.append(c);
        }
        return out.toString();
    }

    /** At most MAX_OUT characters, never ending inside a surrogate pair. */
    private static String cut(String s) {
        if (s.length() <= MAX_OUT) {
            return s;
        }
        int end = Character.isHighSurrogate(s.charAt(MAX_OUT - 1)) ? MAX_OUT - 1 : MAX_OUT;
        return s.substring(0, end);
    }
}
