// KIP-932 share groups with the Apache Kafka 4.3 Java client (KafkaShareConsumer) against Weir.
// Exits non-zero with a message on the first mismatch.
//
//   exactly-once BOOTSTRAP TOPIC GROUP N
//       Three share consumers in one group on a one-partition topic; N records produced;
//       each record is delivered exactly once over the three (all accepted), with the bytes
//       that were produced. Prints the per-consumer counts.
//   redelivery BOOTSTRAP TOPIC GROUP LIMIT
//       One record, released again and again: delivered with delivery counts 1..LIMIT, then
//       archived (never delivered again). A second record held without acknowledging by one
//       consumer comes to another after the acquisition lock runs out, with delivery count 2.
//   consume-print BOOTSTRAP TOPIC GROUP N
//       Accept N deliveries, printing "record OFFSET DELIVERY-COUNT VALUE" for each; close.
//   member BOOTSTRAP TOPIC GROUP
//       A live member (releasing what it gets) until standard input closes; then it leaves.
//   alter-offset BOOTSTRAP GROUP TOPIC OFFSET
//       Admin.alterShareGroupOffsets: partition 0's start offset set to OFFSET.
//   produce BOOTSTRAP TOPIC N / consume-some BOOTSTRAP TOPIC GROUP N / consume-rest ...
//       For the failover test: produce N records; accept the first N/2 deliveries and exit
//       while holding (not acknowledging) the next batch; then consume until every record
//       produced was accepted, printing the delivery counts seen.
//
// Run by tests/tests/share_groups.rs:
//   java -cp 'target/java-share-client-deps/*' tests/java/ShareConsumers.java MODE ARGS...
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.serialization.*;

public class ShareConsumers {
    static final Duration DEADLINE = Duration.ofSeconds(90);

    static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("MISMATCH: " + what);
            System.out.flush();
            System.exit(1);
        }
    }

    static Properties common(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        return p;
    }

    static void createTopic(String bootstrap, String topic) throws Exception {
        try (Admin admin = Admin.create(common(bootstrap))) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) -1))).all().get();
        }
    }

    static List<String> produce(String bootstrap, String topic, int n, String prefix) throws Exception {
        Properties p = common(bootstrap);
        p.put("acks", "all");
        p.put("linger.ms", "5");
        List<String> values = new ArrayList<>();
        try (KafkaProducer<String, String> producer =
                 new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < n; i++) {
                String v = prefix + "-" + i + "-" + "x".repeat(i % 37);
                values.add(v);
                producer.send(new ProducerRecord<>(topic, "k" + i, v));
            }
            producer.flush();
        }
        return values;
    }

    static KafkaShareConsumer<String, String> consumer(String bootstrap, String group, String topic,
                                                       boolean explicit) {
        Properties p = common(bootstrap);
        p.put("group.id", group);
        p.put("share.acknowledgement.mode", explicit ? "explicit" : "implicit");
        p.put("max.poll.records", "50");
        KafkaShareConsumer<String, String> c =
            new KafkaShareConsumer<>(p, new StringDeserializer(), new StringDeserializer());
        c.subscribe(List.of(topic));
        return c;
    }

    static short count(ConsumerRecord<String, String> r) {
        return r.deliveryCount().orElse((short) -1);
    }

    static void exactlyOnce(String bootstrap, String topic, String group, int n) throws Exception {
        // The broker runs with share.auto.offset.reset=earliest: the group starts at the log
        // start, so records produced before it joined are delivered.
        createTopic(bootstrap, topic);
        List<String> values = produce(bootstrap, topic, n, "rec");
        ConcurrentHashMap<String, Integer> seen = new ConcurrentHashMap<>();
        AtomicInteger duplicates = new AtomicInteger();
        AtomicBoolean stop = new AtomicBoolean();
        int[] perConsumer = new int[3];
        List<Thread> threads = new ArrayList<>();
        ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
        for (int i = 0; i < 3; i++) {
            final int id = i;
            Thread t = new Thread(() -> {
                try (KafkaShareConsumer<String, String> c = consumer(bootstrap, group, topic, true)) {
                    while (!stop.get()) {
                        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                            if (seen.merge(r.value(), 1, Integer::sum) > 1) {
                                duplicates.incrementAndGet();
                            }
                            perConsumer[id]++;
                            c.acknowledge(r, AcknowledgeType.ACCEPT);
                        }
                        c.commitSync();
                    }
                } catch (Throwable e) {
                    failures.add(e);
                }
            });
            t.start();
            threads.add(t);
        }
        long end = System.nanoTime() + DEADLINE.toNanos();
        while (seen.size() < n && System.nanoTime() < end && failures.isEmpty()) {
            Thread.sleep(50);
        }
        // An observation window, not a synchronisation: a duplicate delivery would show here.
        Thread.sleep(1000);
        stop.set(true);
        for (Thread t : threads) t.join(30_000);
        check(failures.isEmpty(), "consumer failed: " + failures.peek());
        check(duplicates.get() == 0, duplicates.get() + " records delivered more than once");
        check(seen.size() == n, "delivered " + seen.size() + " of " + n);
        for (String v : values) {
            check(seen.getOrDefault(v, 0) == 1, "record " + v + " delivered " + seen.get(v) + " times");
        }
        System.out.println("share exactly-once OK: " + n + " records, consumers "
            + perConsumer[0] + "/" + perConsumer[1] + "/" + perConsumer[2]);
    }

    static List<ConsumerRecord<String, String>> pollUntil(KafkaShareConsumer<String, String> c, Duration max) {
        long end = System.nanoTime() + max.toNanos();
        while (System.nanoTime() < end) {
            ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
            if (!rs.isEmpty()) {
                List<ConsumerRecord<String, String>> out = new ArrayList<>();
                rs.forEach(out::add);
                return out;
            }
        }
        return List.of();
    }

    static void redelivery(String bootstrap, String topic, String group, int limit) throws Exception {
        createTopic(bootstrap, topic);
        try (KafkaShareConsumer<String, String> a = consumer(bootstrap, group, topic, true)) {
            produce(bootstrap, topic, 1, "released");
            List<Integer> counts = new ArrayList<>();
            for (int delivery = 1; delivery <= limit; delivery++) {
                List<ConsumerRecord<String, String>> rs = pollUntil(a, Duration.ofSeconds(20));
                check(rs.size() == 1, "delivery " + delivery + ": got " + rs.size() + " records");
                counts.add((int) count(rs.get(0)));
                a.acknowledge(rs.get(0), AcknowledgeType.RELEASE);
                a.commitSync();
            }
            for (int i = 0; i < limit; i++) {
                check(counts.get(i) == i + 1, "delivery counts " + counts);
            }
            check(pollUntil(a, Duration.ofSeconds(3)).isEmpty(), "delivered after the delivery limit");

            produce(bootstrap, topic, 1, "held");
            List<ConsumerRecord<String, String>> held = pollUntil(a, Duration.ofSeconds(20));
            check(held.size() == 1 && count(held.get(0)) == 1, "held record: " + held);
            // a keeps it without acknowledging; b gets it once the lock runs out.
            try (KafkaShareConsumer<String, String> b = consumer(bootstrap, group, topic, true)) {
                List<ConsumerRecord<String, String>> again = pollUntil(b, Duration.ofSeconds(30));
                check(again.size() == 1, "redelivered after lock expiry: " + again);
                check(again.get(0).value().equals(held.get(0).value()), "same record");
                // 2 when b acquires it at the first expiry; more when a's consumer fetched it again
                // in the background meanwhile and let that lock run out too (a slow machine).
                check(count(again.get(0)) >= 2, "delivery count after lock expiry " + count(again.get(0)));
                b.acknowledge(again.get(0), AcknowledgeType.ACCEPT);
                b.commitSync();
                System.out.println("share redelivery OK: release counts " + counts
                    + ", archived after " + limit + ", redelivered after lock expiry");
            }
            // a's late acknowledgement of what it lost is refused; the consumer survives it.
            a.acknowledge(held.get(0), AcknowledgeType.ACCEPT);
            Map<org.apache.kafka.common.TopicIdPartition, Optional<org.apache.kafka.common.KafkaException>> result = a.commitSync();
            boolean refused = result.values().stream().anyMatch(Optional::isPresent);
            System.out.println("late acknowledgement refused: " + refused);
        }
    }

    static void produceOnly(String bootstrap, String topic, int n) throws Exception {
        createTopic(bootstrap, topic);
        produce(bootstrap, topic, n, "fo");
        System.out.println("produced " + n);
    }

    /// Accepts deliveries until `accept` records were accepted, then polls once more and exits
    /// without acknowledging that batch (the process is killed by the caller or exits).
    static void consumeSome(String bootstrap, String topic, String group, int accept) throws Exception {
        try (KafkaShareConsumer<String, String> c = consumer(bootstrap, group, topic, true)) {
            int accepted = 0;
            long end = System.nanoTime() + DEADLINE.toNanos();
            while (accepted < accept && System.nanoTime() < end) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    if (accepted < accept) {
                        c.acknowledge(r, AcknowledgeType.ACCEPT);
                        System.out.println("accepted " + r.value());
                        accepted++;
                    } else {
                        c.acknowledge(r, AcknowledgeType.RELEASE);
                    }
                }
                c.commitSync();
            }
            check(accepted == accept, "accepted " + accepted + " of " + accept);
            List<ConsumerRecord<String, String>> held = pollUntil(c, Duration.ofSeconds(20));
            for (ConsumerRecord<String, String> r : held) System.out.println("held " + r.value());
            System.out.println("consume-some done: accepted " + accepted + ", holding " + held.size());
            System.out.flush();
            // Exit without closing: the held records stay acquired until their lock runs out.
            Runtime.getRuntime().halt(0);
        }
    }

    static void consumeRest(String bootstrap, String topic, String group, int expected) throws Exception {
        try (KafkaShareConsumer<String, String> c = consumer(bootstrap, group, topic, true)) {
            int got = 0;
            long end = System.nanoTime() + DEADLINE.toNanos();
            while (got < expected && System.nanoTime() < end) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    System.out.println("got " + r.value() + " count " + count(r));
                    c.acknowledge(r, AcknowledgeType.ACCEPT);
                    got++;
                }
                c.commitSync();
            }
            List<ConsumerRecord<String, String>> extra = pollUntil(c, Duration.ofSeconds(3));
            for (ConsumerRecord<String, String> r : extra) System.out.println("got " + r.value() + " count " + count(r));
            System.out.println("consume-rest done: " + (got + extra.size()));
        }
    }

    /// Accepts `n` deliveries and prints each as "record OFFSET COUNT VALUE", then closes
    /// (the member leaves the group).
    static void consumePrint(String bootstrap, String topic, String group, int n) throws Exception {
        try (KafkaShareConsumer<String, String> c = consumer(bootstrap, group, topic, true)) {
            int got = 0;
            long end = System.nanoTime() + DEADLINE.toNanos();
            while (got < n && System.nanoTime() < end) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    System.out.println("record " + r.offset() + " " + count(r) + " " + r.value());
                    c.acknowledge(r, AcknowledgeType.ACCEPT);
                    got++;
                }
                c.commitSync();
            }
            check(got == n, "consumed " + got + " of " + n);
            System.out.println("consume-print done: " + got);
        }
    }

    /// A member that polls (releasing whatever it gets) until its standard input closes,
    /// then closes (leaves the group).
    static void member(String bootstrap, String topic, String group) throws Exception {
        AtomicBoolean stop = new AtomicBoolean();
        Thread stdin = new Thread(() -> {
            try {
                while (System.in.read() >= 0) { }
            } catch (Exception e) { }
            stop.set(true);
        });
        stdin.setDaemon(true);
        stdin.start();
        try (KafkaShareConsumer<String, String> c = consumer(bootstrap, group, topic, true)) {
            boolean first = true;
            while (!stop.get()) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    c.acknowledge(r, AcknowledgeType.RELEASE);
                }
                c.commitSync();
                if (first) {
                    System.out.println("member polling");
                    System.out.flush();
                    first = false;
                }
            }
        }
        System.out.println("member closed");
    }

    /// Sets the share group's start offset of partition 0 with the Admin client
    /// (AlterShareGroupOffsets; kafka-share-groups has no --to-offset).
    static void alterOffset(String bootstrap, String group, String topic, long offset) throws Exception {
        try (Admin admin = Admin.create(common(bootstrap))) {
            admin.alterShareGroupOffsets(group,
                Map.of(new org.apache.kafka.common.TopicPartition(topic, 0), offset)).all().get();
        }
        System.out.println("altered to " + offset);
    }

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        switch (mode) {
            case "exactly-once" -> exactlyOnce(args[1], args[2], args[3], Integer.parseInt(args[4]));
            case "redelivery" -> redelivery(args[1], args[2], args[3], Integer.parseInt(args[4]));
            case "produce" -> produceOnly(args[1], args[2], Integer.parseInt(args[3]));
            case "consume-some" -> consumeSome(args[1], args[2], args[3], Integer.parseInt(args[4]));
            case "consume-rest" -> consumeRest(args[1], args[2], args[3], Integer.parseInt(args[4]));
            case "consume-print" -> consumePrint(args[1], args[2], args[3], Integer.parseInt(args[4]));
            case "member" -> member(args[1], args[2], args[3]);
            case "alter-offset" -> alterOffset(args[1], args[2], args[3], Long.parseLong(args[4]));
            default -> check(false, "unknown mode " + mode);
        }
        System.exit(0);
    }
}
