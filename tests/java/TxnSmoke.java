// The Apache Kafka Java client's transactions against Weir: a transactional KafkaProducer
// commits and aborts across partitions, read_committed and read_uncommitted consumers see
// what they must, a consume-process-produce loop commits its input offsets with
// sendOffsetsToTransaction (and an aborted one leaves them alone), and a second producer with
// the same transactional.id fences the first. The broker finalizes transaction.version 2, so
// the client runs KIP-890's transactions: every commit and abort bumps the producer epoch,
// which the partitions' producer state shows (DescribeProducers). Exits non-zero with a
// message on the first mismatch.
//
// Run by tests/tests/java_client.rs:
//   java -cp 'target/java-client-deps/*' tests/java/TxnSmoke.java BOOTSTRAP TOPIC
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.*;

public class TxnSmoke {
    static final int PARTITIONS = 3;
    /// Client security settings from an optional third argument (tests/tests/security.rs).
    static final Properties SECURITY = new Properties();

    static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("MISMATCH: " + what);
            System.exit(1);
        }
    }

    static KafkaProducer<String, String> producer(String bootstrap, String id) {
        Properties p = new Properties();
        p.putAll(SECURITY);
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", id);
        p.put("linger.ms", "5");
        KafkaProducer<String, String> producer =
                new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
        producer.initTransactions();
        return producer;
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String group, String isolation) {
        Properties c = new Properties();
        c.putAll(SECURITY);
        c.put("bootstrap.servers", bootstrap);
        c.put("group.id", group);
        c.put("isolation.level", isolation);
        c.put("auto.offset.reset", "earliest");
        c.put("enable.auto.commit", "false");
        return new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer());
    }

    static void send(KafkaProducer<String, String> producer, String topic, String tag, int n) {
        for (int i = 0; i < n; i++) {
            producer.send(new ProducerRecord<>(topic, i % PARTITIONS, tag + "-" + i, tag + "-" + i));
        }
    }

    /** Every value of the topic, read from the start until `expected` arrived and then 2 s more. */
    static List<String> readAll(String bootstrap, String topic, String isolation, int expected) {
        try (KafkaConsumer<String, String> c = consumer(bootstrap, "reader-" + UUID.randomUUID(), isolation)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) tps.add(new TopicPartition(topic, p));
            c.assign(tps);
            c.seekToBeginning(tps);
            List<String> values = new ArrayList<>();
            long deadline = System.currentTimeMillis() + 30_000;
            long quietUntil = Long.MAX_VALUE;
            while (System.currentTimeMillis() < Math.min(deadline, quietUntil)) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) values.add(r.value());
                if (values.size() >= expected && quietUntil == Long.MAX_VALUE) {
                    quietUntil = System.currentTimeMillis() + 2_000;
                }
            }
            Collections.sort(values);
            return values;
        }
    }

    static List<String> expected(String... tagsAndCounts) {
        List<String> values = new ArrayList<>();
        for (int t = 0; t < tagsAndCounts.length; t += 2) {
            int n = Integer.parseInt(tagsAndCounts[t + 1]);
            for (int i = 0; i < n; i++) values.add(tagsAndCounts[t] + "-" + i);
        }
        Collections.sort(values);
        return values;
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
        String input = topic + "-in";
        String output = topic + "-out";
        if (args.length > 2) {
            try (java.io.FileReader r = new java.io.FileReader(args[2])) {
                SECURITY.load(r);
            }
        }
        Properties common = new Properties();
        common.putAll(SECURITY);
        common.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(common)) {
            admin.createTopics(List.of(
                    new NewTopic(topic, PARTITIONS, (short) 1),
                    new NewTopic(input, PARTITIONS, (short) 1),
                    new NewTopic(output, PARTITIONS, (short) 1))).all().get();
        }

        // Commit, abort, commit.
        try (KafkaProducer<String, String> producer = producer(bootstrap, topic + "-txn")) {
            producer.beginTransaction();
            send(producer, topic, "a", 30);
            producer.commitTransaction();
            producer.beginTransaction();
            send(producer, topic, "b", 30);
            producer.flush();
            producer.abortTransaction();
            producer.beginTransaction();
            send(producer, topic, "c", 30);
            producer.commitTransaction();
        }
        // Transactions version 2: each of the three ends bumped the epoch (1, 2, 3), and the
        // markers carried it to the partitions.
        short epoch;
        try (Admin admin = Admin.create(common)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            List<ProducerState> producers =
                    admin.describeProducers(List.of(tp)).partitionResult(tp).get().activeProducers();
            check(producers.size() == 1, "producers of " + tp + ": " + producers);
            epoch = (short) producers.get(0).producerEpoch();
            check(epoch == 3, "producer epoch after three transactions: " + producers);
        }
        List<String> committed = readAll(bootstrap, topic, "read_committed", 60);
        check(committed.equals(expected("a", "30", "c", "30")), "read_committed saw " + committed);
        List<String> all = readAll(bootstrap, topic, "read_uncommitted", 90);
        check(all.equals(expected("a", "30", "b", "30", "c", "30")), "read_uncommitted saw " + all.size());

        // Consume-process-produce with sendOffsetsToTransaction.
        try (KafkaProducer<String, String> plain = new KafkaProducer<>(common, new StringSerializer(), new StringSerializer())) {
            send(plain, input, "in", 30);
        }
        String group = topic + "-eos";
        try (KafkaConsumer<String, String> c = consumer(bootstrap, group, "read_committed");
             KafkaProducer<String, String> producer = producer(bootstrap, topic + "-eos-txn")) {
            c.subscribe(List.of(input));
            int processed = 0;
            long deadline = System.currentTimeMillis() + 60_000;
            while (processed < 30 && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(200));
                if (records.isEmpty()) continue;
                producer.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<String, String> r : records) {
                    producer.send(new ProducerRecord<>(output, r.partition(), r.key(), "out-" + r.value()));
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    processed++;
                }
                producer.sendOffsetsToTransaction(offsets, c.groupMetadata());
                producer.commitTransaction();
            }
            check(processed == 30, "processed " + processed + " input records");
            // An aborted transaction moves no offset.
            producer.beginTransaction();
            Map<TopicPartition, OffsetAndMetadata> rewind = new HashMap<>();
            for (int p = 0; p < PARTITIONS; p++) rewind.put(new TopicPartition(input, p), new OffsetAndMetadata(0));
            producer.sendOffsetsToTransaction(rewind, c.groupMetadata());
            producer.abortTransaction();
            Set<TopicPartition> tps = new HashSet<>();
            for (int p = 0; p < PARTITIONS; p++) tps.add(new TopicPartition(input, p));
            Map<TopicPartition, OffsetAndMetadata> after = c.committed(tps);
            long sum = 0;
            for (OffsetAndMetadata o : after.values()) sum += o == null ? 0 : o.offset();
            check(sum == 30, "committed input offsets add up to " + sum + ": " + after);
        }
        List<String> out = readAll(bootstrap, output, "read_committed", 30);
        check(out.size() == 30 && out.get(0).startsWith("out-in-"), "output " + out);

        // Zombie fencing.
        KafkaProducer<String, String> zombie = producer(bootstrap, topic + "-zombie");
        zombie.beginTransaction();
        send(zombie, topic, "zombie", 3);
        zombie.flush();
        try (KafkaProducer<String, String> successor = producer(bootstrap, topic + "-zombie")) {
            boolean fenced = false;
            try {
                zombie.commitTransaction();
            } catch (ProducerFencedException e) {
                fenced = true;
            } catch (org.apache.kafka.common.KafkaException e) {
                fenced = e.getCause() instanceof ProducerFencedException
                        || e instanceof org.apache.kafka.common.errors.InvalidProducerEpochException;
            }
            check(fenced, "the zombie committed after a new producer took its transactional.id");
            successor.beginTransaction();
            send(successor, topic, "d", 3);
            successor.commitTransaction();
        }
        zombie.close(Duration.ZERO);
        committed = readAll(bootstrap, topic, "read_committed", 63);
        check(committed.equals(expected("a", "30", "c", "30", "d", "3")), "after fencing read_committed saw " + committed);
        System.out.println("java transactions OK: commit, abort, sendOffsetsToTransaction, fencing;"
                + " transactions version 2: producer epoch " + epoch + " after 3 transactions");
    }
}
