package loanrisk.flink;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Test harness: reads JSON lines {"spec": ..., "payload": ..., "ingested_ms": ...} on stdin and prints,
 * per line, the reason (or "-" when valid) and the event time the source would use (epoch ms).
 */
public final class ValidateCli {

    private ValidateCli() {
    }

    public static void main(String[] args) throws Exception {
        ObjectMapper mapper = new ObjectMapper();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        String line;
        while ((line = in.readLine()) != null) {
            JsonNode req = mapper.readTree(line);
            EventSpec spec = EventSpec.of(req.get("spec").asText());
            String payload = req.get("payload").isNull() ? null : req.get("payload").asText();
            long now = req.get("ingested_ms").asLong();
            EventValidator.Result r = EventValidator.validate(spec, payload, now);
            out.println((r.reason == null ? "-" : r.reason) + "\t" + EventValidator.eventTime(spec, payload, now).toEpochMilli());
        }
        out.flush();
    }
}
