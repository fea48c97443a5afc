import java.io.File;
import java.lang.management.ManagementFactory;
import java.util.Map;

import org.apache.iceberg.DataFile;
import org.apache.iceberg.DataFiles;
import org.apache.iceberg.FileFormat;
import org.apache.iceberg.PartitionSpec;
import org.apache.iceberg.Schema;
import org.apache.iceberg.Table;
import org.apache.iceberg.catalog.TableIdentifier;
import org.apache.iceberg.hadoop.HadoopCatalog;
import org.apache.iceberg.types.Types;

/**
 * Run by bench/snapshot_metadata.py: {@code commits} appends to one Iceberg table, each as the Flink job's committer
 * makes it at a checkpoint (a refresh, one data file, the job's summary properties), none expired. Every
 * {@code step} commits it prints the snapshots kept, the newest metadata file's size and the process CPU
 * milliseconds per commit over the step. The catalog is Iceberg's file-system one on local disk, so each commit
 * writes the metadata file and the next refresh parses it, as with the job's catalog, without the object store.
 */
public class SnapshotCommitCost {
    public static void main(String[] args) {
        int commits = Integer.parseInt(args[0]);
        int step = Integer.parseInt(args[1]);
        String warehouse = args[2];
        HadoopCatalog catalog = new HadoopCatalog(new org.apache.hadoop.conf.Configuration(), "file://" + warehouse);
        Schema schema = new Schema(Types.NestedField.required(1, "event_id", Types.StringType.get()),
                Types.NestedField.required(2, "event_date", Types.DateType.get()));
        PartitionSpec spec = PartitionSpec.builderFor(schema).identity("event_date").build();
        Table table = catalog.createTable(TableIdentifier.of("bench", "t"), schema, spec,
                Map.of("write.metadata.delete-after-commit.enabled", "true"));
        com.sun.management.OperatingSystemMXBean os =
                (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        File metadata = new File(warehouse + "/bench/t/metadata");
        long cpu = os.getProcessCpuTime();
        long wall = System.nanoTime();
        for (int i = 1; i <= commits; i++) {
            table.refresh();
            DataFile file = DataFiles.builder(spec).withPath(warehouse + "/data/f" + i + ".parquet")
                    .withFileSizeInBytes(40_000).withRecordCount(3_000).withPartitionPath("event_date=2026-12-06")
                    .withFormat(FileFormat.PARQUET).build();
            table.newAppend().appendFile(file)
                    .set("flink.job-id", "0123456789abcdef0123456789abcdef")
                    .set("flink.operator-id", "fedcba9876543210fedcba9876543210")
                    .set("flink.max-committed-checkpoint-id", Integer.toString(i))
                    .commit();
            if (i % step == 0) {
                long newest = 0;
                for (File f : metadata.listFiles()) {
                    if (f.getName().endsWith(".metadata.json")) {
                        newest = Math.max(newest, f.length());
                    }
                }
                long cpuNow = os.getProcessCpuTime();
                long wallNow = System.nanoTime();
                System.out.printf("%d %d %.3f %.3f%n", i, newest, (cpuNow - cpu) / 1e6 / step, (wallNow - wall) / 1e6 / step);
                System.out.flush();
                cpu = cpuNow;
                wall = wallNow;
            }
        }
    }
}
