package loanrisk.flink;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.GeneralSecurityException;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

import org.apache.flink.table.functions.FunctionContext;

/**
 * Pseudonyms for personal data: {@code <key id>:<hex HMAC-SHA256 of the UTF-8 value>}.
 *
 * <p>The key is read on the TaskManager from the file the job parameter {@code pii.key_file} names (a
 * mounted secret on a cluster), never passed as a SQL literal or a job parameter, so it appears in no
 * plan, job graph, REST response or checkpoint. The key id prefix says which key made a pseudonym, so
 * values made before and after a key rotation can never be mistaken for one another.
 */
final class Pseudonymizer {

    static final String KEY_FILE = "pii.key_file";
    static final String KEY_ID = "pii.key_id";
    private static final int MAX_KEY_BYTES = 4096;
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private final String keyId;
    private final Mac mac;

    Pseudonymizer(String keyId, byte[] key) {
        if (keyId == null || !keyId.matches("[A-Za-z0-9_-]{1,16}")) {
            throw new IllegalArgumentException(KEY_ID + " must be 1-16 letters, digits, '_' or '-', got " + keyId);
        }
        if (key.length == 0) {
            throw new IllegalArgumentException("the PII key is empty");
        }
        this.keyId = keyId;
        try {
            mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is not available in this JVM", e);
        }
    }

    /** The pseudonymizer the job parameters configure (called from a function's open()). */
    static Pseudonymizer fromJobParameters(FunctionContext context) {
        String file = context.getJobParameter(KEY_FILE, null);
        if (file == null || file.isEmpty()) {
            throw new IllegalStateException("job parameter " + KEY_FILE + " is not set: the job must name the file "
                    + "holding the PII key (pipeline.global-job-parameters)");
        }
        return new Pseudonymizer(context.getJobParameter(KEY_ID, "k1"), readKey(Paths.get(file)));
    }

    /** The key in {@code file}: its bytes without trailing whitespace (a newline an editor adds is not key). */
    static byte[] readKey(Path file) {
        byte[] raw;
        try (InputStream in = Files.newInputStream(file)) {
            raw = in.readNBytes(MAX_KEY_BYTES + 1);
        } catch (IOException e) {
            // The message names the file, never its content.
            throw new IllegalStateException("cannot read the PII key file " + file + ": " + e.getClass().getSimpleName(), e);
        }
        if (raw.length > MAX_KEY_BYTES) {
            throw new IllegalStateException("the PII key file " + file + " is larger than " + MAX_KEY_BYTES + " bytes");
        }
        int end = raw.length;
        while (end > 0 && Character.isWhitespace(raw[end - 1])) {
            end--;
        }
        if (end == 0) {
            throw new IllegalStateException("the PII key file " + file + " is empty");
        }
        byte[] key = new byte[end];
        System.arraycopy(raw, 0, key, 0, end);
        return key;
    }

    /** The pseudonym of {@code value} (null for null). */
    String pseudonym(String value) {
        if (value == null) {
            return null;
        }
        byte[] digest = mac.doFinal(value.getBytes(StandardCharsets.UTF_8));
        char[] out = new char[keyId.length() + 1 + 2 * digest.length];
        keyId.getChars(0, keyId.length(), out, 0);
        int at = keyId.length();
        out[at++] = ':';
        for (byte b : digest) {
            out[at++] = HEX[(b >> 4) & 0xf];
            out[at++] = HEX[b & 0xf];
        }
        return new String(out);
    }
}
