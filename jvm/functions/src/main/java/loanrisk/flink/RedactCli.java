package loanrisk.flink;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Test harness: {@code RedactCli <key file> <key id>} reads JSON lines {"spec": ..., "payload": ...} on
 * stdin and prints, per line, the redacted payload as a JSON string, or {"pseudonym": value} lines the
 * pseudonym of the value; the job's own code, so tests check what the job stores.
 */
public final class RedactCli {

    private RedactCli() {
    }

    public static void main(String[] args) throws Exception {
        Pseudonymizer p = new Pseudonymizer(args[1], Pseudonymizer.readKey(Paths.get(args[0])));
        ObjectMapper mapper = new ObjectMapper();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        String line;
        while ((line = in.readLine()) != null) {
            JsonNode req = mapper.readTree(line);
            String result;
            if (req.has("pseudonym")) {
                result = p.pseudonym(req.get("pseudonym").asText());
            } else {
                String payload = req.get("payload").isNull() ? null : req.get("payload").asText();
                result = Redactor.redact(EventSpec.of(req.get("spec").asText()), p, payload);
            }
            out.println(mapper.writeValueAsString(result));
        }
        out.flush();
    }
}
