package loanrisk.flink;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * {@code first_seen(TABLE t PARTITION BY event_id, DEFAULT, uid)}:
 * every row of {@code t}, passed through, with {@code seen_before}, how many messages with its event id
 * came before it (0 for the first arrival). One keyed state entry per id serves both the
 * de-duplication ({@code seen_before = 0}) and the count of the copies it drops ({@code seen_before > 0}),
 * where a ROW_NUMBER de-duplication beside a GROUP BY count kept two per id and shuffled every event twice.
 * The state's retention is the de-duplication's ({@code table.exec.state.ttl} of the node, set by
 * jobs/state_retention.py); the output is Flink's internal row, so only the input is converted (a polymorphic
 * table argument is a Row in Flink 2.1).
 */
@DataTypeHint(value = "ROW<seen_before BIGINT>", bridgedTo = RowData.class)
public class FirstSeen extends ProcessTableFunction<RowData> {

    /** The state of one event id: messages seen with it. Nullable, as the PTF docs advise for state. */
    public static class Seen {
        public Long messages;
    }

    public void eval(@StateHint Seen seen,
                     @ArgumentHint({ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.PASS_COLUMNS_THROUGH}) Row input) {
        long before = seen.messages == null ? 0L : seen.messages;
        collect(GenericRowData.of(before));
        seen.messages = before + 1;
    }
}
