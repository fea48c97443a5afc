import java.io.File;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;

import org.apache.hadoop.conf.Configuration;
import org.apache.iceberg.Files;
import org.apache.iceberg.Schema;
import org.apache.iceberg.data.GenericRecord;
import org.apache.iceberg.data.Record;
import org.apache.iceberg.data.parquet.GenericParquetWriter;
import org.apache.iceberg.io.FileAppender;
import org.apache.iceberg.parquet.Parquet;
import org.apache.iceberg.types.Types;

/**
 * Run by bench/parquet_file_open.py. Per round, thread CPU milliseconds per item of:
 * <ul>
 *   <li>{@code file}: an Iceberg Parquet data file written whole (writer opened, one row, closed) to an output file
 *   that is not Hadoop's, as the job's S3FileIO hands Iceberg one: its writer builder makes a new Hadoop
 *   Configuration for it;</li>
 *   <li>{@code conf}: that Configuration alone (made, one property set: it parses Hadoop's default resources,
 *   printed at the end);</li>
 *   <li>{@code bare}: the same without the default resources, what a writer that skipped them would pay.</li>
 * </ul>
 */
public class ParquetFileOpenCost {
    public static void main(String[] args) throws Exception {
        int items = Integer.parseInt(args[0]);
        int rounds = Integer.parseInt(args[1]);
        File dir = new File(args[2]);
        ThreadMXBean cpu = ManagementFactory.getThreadMXBean();
        Schema schema = new Schema(Types.NestedField.optional(1, "event_id", Types.StringType.get()),
                Types.NestedField.optional(2, "amount_minor", Types.LongType.get()));
        Record row = GenericRecord.create(schema);
        row.setField("event_id", "e-1");
        row.setField("amount_minor", 1234L);
        for (int round = 0; round < rounds; round++) {
            long start = cpu.getCurrentThreadCpuTime();
            for (int i = 0; i < items; i++) {
                File file = new File(dir, "f-" + i + ".parquet");
                try (FileAppender<Record> writer = Parquet.write(Files.localOutput(file)).schema(schema)
                        .createWriterFunc(GenericParquetWriter::create).overwrite().build()) {
                    writer.add(row);
                }
                file.delete();
            }
            long files = cpu.getCurrentThreadCpuTime();
            for (int i = 0; i < items; i++) {
                new Configuration().set("parquet.example", "x");
            }
            long confs = cpu.getCurrentThreadCpuTime();
            for (int i = 0; i < items; i++) {
                new Configuration(false).set("parquet.example", "x");
            }
            long bare = cpu.getCurrentThreadCpuTime();
            System.out.printf("%d %.4f %.4f %.4f%n", round, (files - start) / 1e6 / items, (confs - files) / 1e6 / items,
                    (bare - confs) / 1e6 / items);
        }
        // Hadoop classes register more default resources as they load (Parquet's bring mapred's and yarn's).
        System.out.println("resources " + new Configuration().toString().replace("Configuration: ", ""));
    }
}
