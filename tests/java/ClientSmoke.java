// The Apache Kafka Java client against a Weir broker: AdminClient creates a topic, an
// idempotent acks=all KafkaProducer (the Java client's defaults) writes keyed records with
// headers under each codec, and a KafkaConsumer in a consumer group (subscribe, group.id,
// manual commitSync) reads them back; a second consumer of the group then reads the committed
// offsets back with committed(). Exits non-zero with a message on the first mismatch.
//
// Run by tests/tests/java_client.rs:
//   java -cp 'target/java-client-deps/*' tests/java/ClientSmoke.java BOOTSTRAP TOPIC [CLIENT.PROPERTIES]
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.Future;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.*;

public class ClientSmoke {
    static final int PARTITIONS = 3;
    static final int PER_CODEC = 200;
    static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};

    static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("MISMATCH: " + what);
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        // Kafka's ApiExceptions carry no stack trace, which the source launcher cannot print:
        // name the exception and its causes here.
        try {
            run(args);
        } catch (Throwable e) {
            for (Throwable t = e; t != null; t = t.getCause()) {
                System.err.println("failed: " + t.getClass().getName() + ": " + t.getMessage());
            }
            System.exit(1);
        }
    }

    static void run(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        if (args.length > 2) {
            // Client security settings (security.protocol, ssl.*, sasl.*), from tests/tests/security.rs.
            try (java.io.FileReader r = new java.io.FileReader(args[2])) {
                common.load(r);
            }
        }

        try (Admin admin = Admin.create(common)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get();
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            check(d.partitions().size() == PARTITIONS, "partitions after create: " + d.partitions().size());
        }

        // value -> (partition, offset) as acknowledged
        Map<String, long[]> acked = new HashMap<>();
        int total = 0;
        for (String codec : CODECS) {
            Properties p = new Properties();
            p.putAll(common);
            p.put("compression.type", codec);
            p.put("linger.ms", "5");
            try (KafkaProducer<String, String> producer =
                         new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                List<String> values = new ArrayList<>();
                for (int i = 0; i < PER_CODEC; i++) {
                    String value = codec + "-value-" + i + "-" + "x".repeat(i % 50);
                    ProducerRecord<String, String> r =
                            new ProducerRecord<>(topic, "key-" + (i % 17), value);
                    r.headers().add("codec", codec.getBytes(StandardCharsets.UTF_8));
                    sent.add(producer.send(r));
                    values.add(value);
                }
                producer.flush();
                for (int i = 0; i < sent.size(); i++) {
                    RecordMetadata m = sent.get(i).get();
                    acked.put(values.get(i), new long[] {m.partition(), m.offset()});
                }
            }
            total += PER_CODEC;
        }
        check(acked.size() == total, "acknowledged records: " + acked.size());

        Properties c = new Properties();
        c.putAll(common);
        c.put("enable.auto.commit", "false");
        c.put("group.id", "java-smoke-" + topic);
        c.put("auto.offset.reset", "earliest");
        List<TopicPartition> parts = new ArrayList<>();
        for (int i = 0; i < PARTITIONS; i++) parts.add(new TopicPartition(topic, i));
        Map<TopicPartition, Long> ends;
        try (KafkaConsumer<String, String> consumer =
                     new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
            consumer.subscribe(List.of(topic));
            ends = consumer.endOffsets(parts);
            long endSum = ends.values().stream().mapToLong(Long::longValue).sum();
            check(endSum == total, "sum of end offsets " + endSum + " != " + total);
            Map<Integer, Long> nextOffset = new HashMap<>();
            Map<String, Integer> keyPartition = new HashMap<>();
            int read = 0;
            long deadline = System.currentTimeMillis() + 60_000;
            while (read < total && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    long expectedOffset = nextOffset.getOrDefault(r.partition(), 0L);
                    check(r.offset() == expectedOffset, "offset " + r.offset() + " in partition "
                            + r.partition() + ", expected " + expectedOffset);
                    nextOffset.put(r.partition(), expectedOffset + 1);
                    long[] where = acked.get(r.value());
                    check(where != null, "unexpected value " + r.value());
                    check(where[0] == r.partition() && where[1] == r.offset(),
                            "record " + r.value() + " read at " + r.partition() + "/" + r.offset()
                                    + ", acknowledged at " + where[0] + "/" + where[1]);
                    Integer p = keyPartition.putIfAbsent(r.key(), r.partition());
                    check(p == null || p == r.partition(), "key " + r.key() + " in two partitions");
                    Header h = r.headers().lastHeader("codec");
                    check(h != null && r.value().startsWith(new String(h.value(), StandardCharsets.UTF_8) + "-"),
                            "header of " + r.value());
                    read++;
                }
            }
            check(read == total, "records read " + read + " of " + total);
            consumer.commitSync();
        }
        long committedSum = 0;
        try (KafkaConsumer<String, String> reader =
                     new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
            Map<TopicPartition, OffsetAndMetadata> committed = reader.committed(new HashSet<>(parts));
            for (TopicPartition tp : parts) {
                OffsetAndMetadata o = committed.get(tp);
                check(o != null, "no committed offset for " + tp);
                check(o.offset() == ends.get(tp), "committed offset of " + tp + " is " + o.offset()
                        + ", end offset " + ends.get(tp));
                committedSum += o.offset();
            }
        }
        System.out.println("java client OK: " + total + " records, committed " + committedSum);
    }
}
