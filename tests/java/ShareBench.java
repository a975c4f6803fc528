// Share-group throughput (issue 17) with the Apache Kafka 4.3 Java client, run by weir-bench's
// `share` scenario against Weir and Apache Kafka alike:
//
//   java -cp 'target/java-share-client-deps/*' tests/java/ShareBench.java \
//       BOOTSTRAP TOPIC GROUP RECORDS CONSUMERS
//
// Creates TOPIC with one partition, produces RECORDS records of 100 bytes (acks=all), points
// the share group at the log start (the group config share.auto.offset.reset=earliest where
// the broker has group configs; Weir takes it as a broker setting), then starts CONSUMERS
// KafkaShareConsumers in the group. Each accepts every record it gets (explicit
// acknowledgement, commitSync after each poll). Prints
//
//   share-bench records=N accepted=A seconds=S
//
// where S runs from the first record received by any consumer until every record was
// accepted (its commitSync answered without error), and A counts distinct records accepted.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.*;

public class ShareBench {
    static final Duration DEADLINE = Duration.ofSeconds(300);

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], group = args[2];
        int records = Integer.parseInt(args[3]);
        int consumers = Integer.parseInt(args[4]);
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(common)) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) -1))).all().get();
            try {
                ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
                AlterConfigOp op = new AlterConfigOp(
                    new org.apache.kafka.clients.admin.ConfigEntry("share.auto.offset.reset", "earliest"),
                    AlterConfigOp.OpType.SET);
                admin.incrementalAlterConfigs(Map.of(resource, List.of(op))).all().get();
            } catch (ExecutionException e) {
                System.err.println("no group config (broker setting used): " + e.getCause());
            }
        }
        Properties p = (Properties) common.clone();
        p.put("acks", "all");
        p.put("linger.ms", "5");
        byte[] value = new byte[100];
        try (KafkaProducer<byte[], byte[]> producer =
                 new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            for (int i = 0; i < records; i++) {
                producer.send(new ProducerRecord<>(topic, value));
            }
            producer.flush();
        }

        Set<Long> accepted = ConcurrentHashMap.newKeySet();
        AtomicLong firstReceived = new AtomicLong();
        AtomicBoolean stop = new AtomicBoolean();
        ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < consumers; i++) {
            Thread t = new Thread(() -> {
                Properties c = (Properties) common.clone();
                c.put("group.id", group);
                c.put("share.acknowledgement.mode", "explicit");
                try (KafkaShareConsumer<byte[], byte[]> consumer =
                         new KafkaShareConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
                    consumer.subscribe(List.of(topic));
                    while (!stop.get()) {
                        List<Long> offsets = new ArrayList<>();
                        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) {
                            firstReceived.compareAndSet(0, System.nanoTime());
                            consumer.acknowledge(r, AcknowledgeType.ACCEPT);
                            offsets.add(r.offset());
                        }
                        if (offsets.isEmpty()) continue;
                        Map<TopicIdPartition, Optional<org.apache.kafka.common.KafkaException>> result =
                            consumer.commitSync();
                        if (result.values().stream().noneMatch(Optional::isPresent)) {
                            accepted.addAll(offsets);
                        }
                    }
                } catch (Throwable e) {
                    failures.add(e);
                }
            });
            t.start();
            threads.add(t);
        }
        long end = System.nanoTime() + DEADLINE.toNanos();
        while (accepted.size() < records && System.nanoTime() < end && failures.isEmpty()) {
            Thread.sleep(1);
        }
        long done = System.nanoTime();
        stop.set(true);
        for (Thread t : threads) t.join(30_000);
        if (!failures.isEmpty()) {
            System.err.println("consumer failed: " + failures.peek());
            System.exit(1);
        }
        double seconds = (done - firstReceived.get()) / 1e9;
        System.out.println("share-bench records=" + records + " accepted=" + accepted.size()
            + " seconds=" + seconds);
        System.exit(accepted.size() == records ? 0 : 1);
    }
}
