// One Apache Kafka Java consumer (fetch sessions on, as the client always does) assigned every
// partition of a topic, run by weir-sessions-bench (bench/src/bin/weir-sessions-bench.rs):
// it polls for WARMUP seconds, prints "START", then for SECONDS more counts the bytes it sent
// (the client's outgoing-byte-total: fetch requests, nearly all of it) and each record's
// end-to-end latency (now minus its CreateTime), and prints
// "RESULT <outgoing bytes> <fetch requests> <records> <p50 ms> <p99 ms>".
//
//   java -cp 'target/java-client-deps/*' bench/java/ManyPartitionsConsumer.java BOOTSTRAP TOPIC PARTITIONS WARMUP SECONDS
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ManyPartitionsConsumer {
    static double metric(KafkaConsumer<?, ?> c, String group, String name) {
        for (Map.Entry<MetricName, ? extends Metric> e : c.metrics().entrySet()) {
            MetricName n = e.getKey();
            if (n.group().equals(group) && n.name().equals(name)) {
                return ((Number) e.getValue().metricValue()).doubleValue();
            }
        }
        return 0;
    }

    public static void main(String[] args) {
        String topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        long warmupMs = Long.parseLong(args[3]) * 1000;
        long measureMs = Long.parseLong(args[4]) * 1000;
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        p.put("auto.offset.reset", "latest");
        p.put("enable.auto.commit", "false");
        try (KafkaConsumer<byte[], byte[]> c =
                     new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            long start = System.currentTimeMillis();
            while (System.currentTimeMillis() - start < warmupMs) c.poll(Duration.ofMillis(100));
            double bytes0 = metric(c, "consumer-metrics", "outgoing-byte-total");
            double fetches0 = metric(c, "consumer-fetch-manager-metrics", "fetch-total");
            System.out.println("START");
            System.out.flush();
            List<Long> latencies = new ArrayList<>();
            long begin = System.currentTimeMillis();
            while (System.currentTimeMillis() - begin < measureMs) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(100))) {
                    latencies.add(System.currentTimeMillis() - r.timestamp());
                }
            }
            double bytes = metric(c, "consumer-metrics", "outgoing-byte-total") - bytes0;
            double fetches = metric(c, "consumer-fetch-manager-metrics", "fetch-total") - fetches0;
            Collections.sort(latencies);
            long p50 = latencies.isEmpty() ? -1 : latencies.get(latencies.size() / 2);
            long p99 = latencies.isEmpty() ? -1 : latencies.get((int) Math.min(latencies.size() - 1, latencies.size() * 99L / 100));
            System.out.printf("RESULT %.0f %.0f %d %d %d%n", bytes, fetches, latencies.size(), p50, p99);
        }
    }
}
