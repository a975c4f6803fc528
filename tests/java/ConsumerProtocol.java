// KIP-848 consumer groups (group.protocol=consumer) with the Apache Kafka Java client against
// a Weir broker: three KafkaConsumers in one group on a 6-partition topic each get a share
// from the broker's assignor; every produced record is consumed exactly once (commitSync
// after each poll); a fourth member joins and the others keep receiving; one member closes
// and its partitions move to the rest. Admin's describeConsumerGroups (ConsumerGroupDescribe)
// and listConsumerGroupOffsets (OffsetFetch) then show the group as Kafka would.
// Exits non-zero with a message on the first mismatch.
//
// Run by tests/tests/consumer_group_protocol.rs:
//   java -cp 'target/java-client-deps/*' tests/java/ConsumerProtocol.java BOOTSTRAP TOPIC GROUP
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;

public class ConsumerProtocol {
    static final int PARTITIONS = 6;
    static final int BATCH = 300;
    static final Duration DEADLINE = Duration.ofSeconds(90);

    static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("MISMATCH: " + what);
            System.exit(1);
        }
    }

    /// Waits for `condition` until the deadline; fails with `what` after it.
    static void waitFor(String what, java.util.function.BooleanSupplier condition) throws InterruptedException {
        long end = System.nanoTime() + DEADLINE.toNanos();
        while (!condition.getAsBoolean()) {
            check(System.nanoTime() < end, "timed out waiting for " + what);
            Thread.sleep(50);
        }
    }

    /// One group member on its own thread: polls, records what it consumed, commits.
    static class Member implements Runnable {
        final String name;
        final Properties props;
        final String topic;
        final ConcurrentHashMap<String, String> consumedBy;
        final AtomicInteger duplicates;
        final AtomicLong received = new AtomicLong();
        volatile Set<TopicPartition> assignment = Set.of();
        volatile boolean stop = false;
        volatile Throwable failure;
        final Thread thread;

        Member(String name, Properties props, String topic, ConcurrentHashMap<String, String> consumedBy,
               AtomicInteger duplicates) {
            this.name = name;
            this.props = props;
            this.topic = topic;
            this.consumedBy = consumedBy;
            this.duplicates = duplicates;
            this.thread = new Thread(this, name);
            this.thread.start();
        }

        public void run() {
            try (KafkaConsumer<String, String> c =
                         new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer())) {
                c.subscribe(List.of(topic));
                while (!stop) {
                    ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(100));
                    for (ConsumerRecord<String, String> r : records) {
                        String where = r.partition() + "@" + r.offset();
                        if (consumedBy.putIfAbsent(where, name) != null) {
                            duplicates.incrementAndGet();
                            System.err.println("DUPLICATE " + where + " by " + name + " and " + consumedBy.get(where));
                        }
                        received.incrementAndGet();
                    }
                    if (!records.isEmpty()) {
                        c.commitSync();
                    }
                    assignment = new HashSet<>(c.assignment());
                }
                assignment = Set.of();
            } catch (Throwable t) {
                failure = t;
                t.printStackTrace();
            }
        }

        void close() throws InterruptedException {
            stop = true;
            thread.join(DEADLINE.toMillis());
            check(!thread.isAlive(), name + " closes");
            check(failure == null, name + " failed: " + failure);
        }
    }

    static void produce(Properties common, String topic, int from, int count) throws Exception {
        try (KafkaProducer<String, String> producer =
                     new KafkaProducer<>(common, new StringSerializer(), new StringSerializer())) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = from; i < from + count; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, i % PARTITIONS, "k" + i, "v" + i)));
            }
            for (Future<RecordMetadata> f : sent) {
                f.get();
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String group = args[2];
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(common)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get();
        }
        Properties consumerProps = new Properties();
        consumerProps.putAll(common);
        consumerProps.put("group.id", group);
        consumerProps.put("group.protocol", "consumer");
        consumerProps.put("enable.auto.commit", "false");
        consumerProps.put("auto.offset.reset", "earliest");

        ConcurrentHashMap<String, String> consumedBy = new ConcurrentHashMap<>();
        AtomicInteger duplicates = new AtomicInteger();
        List<Member> members = new ArrayList<>();
        for (int i = 1; i <= 3; i++) {
            members.add(new Member("member-" + i, consumerProps, topic, consumedBy, duplicates));
        }
        produce(common, topic, 0, BATCH);
        waitFor("three members sharing six partitions and " + BATCH + " records consumed", () ->
                members.stream().allMatch(m -> m.assignment.size() == 2) && consumedBy.size() == BATCH);
        Set<TopicPartition> union = new HashSet<>();
        members.forEach(m -> union.addAll(m.assignment));
        check(union.size() == PARTITIONS, "the three shares cover the topic: " + union);

        // A fourth member joins: it gets partitions, the others keep theirs in part and go on
        // receiving.
        Member fourth = new Member("member-4", consumerProps, topic, consumedBy, duplicates);
        members.add(fourth);
        waitFor("the fourth member gets partitions", () -> !fourth.assignment.isEmpty()
                && members.stream().mapToInt(m -> m.assignment.size()).sum() == PARTITIONS);
        long[] before = members.stream().mapToLong(m -> m.received.get()).toArray();
        produce(common, topic, BATCH, BATCH);
        waitFor("every record of the second batch consumed", () -> consumedBy.size() == 2 * BATCH);
        for (int i = 0; i < members.size(); i++) {
            Member m = members.get(i);
            check(m.received.get() > before[i], m.name + " keeps receiving after the fourth joined");
        }

        // member-1 leaves (close: ConsumerGroupHeartbeat with epoch -1): its partitions move.
        Member leaving = members.remove(0);
        Set<TopicPartition> itsPartitions = leaving.assignment;
        leaving.close();
        waitFor("member-1's partitions move to the others", () -> {
            Set<TopicPartition> held = new HashSet<>();
            members.forEach(m -> held.addAll(m.assignment));
            return held.containsAll(itsPartitions) && held.size() == PARTITIONS;
        });
        produce(common, topic, 2 * BATCH, BATCH);
        waitFor("every record of the third batch consumed", () -> consumedBy.size() == 3 * BATCH);
        check(duplicates.get() == 0, duplicates.get() + " records consumed twice");

        try (Admin admin = Admin.create(common)) {
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
            check(d.type() == GroupType.CONSUMER, "group type " + d.type());
            check(d.members().size() == 3, "members " + d.members());
            waitFor("the group is stable", () -> {
                try {
                    return admin.describeConsumerGroups(List.of(group)).all().get().get(group).groupState()
                            == GroupState.STABLE;
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            boolean listed = admin.listGroups(ListGroupsOptions.forConsumerGroups()).all().get().stream()
                    .anyMatch(l -> l.groupId().equals(group) && l.type().equals(Optional.of(GroupType.CONSUMER)));
            check(listed, "ListGroups lists the group as a consumer group");
            Map<TopicPartition, OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            long total = committed.values().stream().mapToLong(OffsetAndMetadata::offset).sum();
            check(total == 3 * BATCH, "committed offsets add up to " + total + ": " + committed);
        }
        for (Member m : members) {
            m.close();
        }
        System.out.println("consumer protocol OK: " + (3 * BATCH) + " records exactly once, 4 members, 1 left");
    }
}
