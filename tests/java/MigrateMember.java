// One member of a consumer group for tests/tests/group_migration.rs: a Java KafkaConsumer with
// the group protocol named on the command line (classic or consumer), reporting on stdout
// everything the test checks, one event per line:
//   OWNED p,p,...      the partitions it holds after each rebalance callback
//   REC p offset value every record consumed
//   COMMIT p offset    a committed offset (the next offset to read), once the commit succeeded
//   COMMITFAIL reason  a commit the coordinator refused (the records stay uncommitted)
//   CLOSED             after a clean close (LeaveGroup / leave heartbeat)
// It commits synchronously after every poll and when partitions are revoked. A line "stop" on
// stdin (or its end) closes it cleanly.
//
//   java -cp 'target/java-client-deps/*' tests/java/MigrateMember.java BOOTSTRAP TOPIC GROUP PROTOCOL
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class MigrateMember {
    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static final Map<TopicPartition, Long> next = new HashMap<>();
    static final SortedSet<Integer> owned = new TreeSet<>();

    static void commit(KafkaConsumer<String, String> consumer, Collection<TopicPartition> which) {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (TopicPartition tp : which) {
            Long n = next.get(tp);
            if (n != null) offsets.put(tp, new OffsetAndMetadata(n));
        }
        if (offsets.isEmpty()) return;
        try {
            consumer.commitSync(offsets);
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
                say("COMMIT " + e.getKey().partition() + " " + e.getValue().offset());
            }
        } catch (KafkaException e) {
            say("COMMITFAIL " + e.getClass().getSimpleName());
        }
    }

    static void printOwned() {
        StringBuilder s = new StringBuilder("OWNED ");
        for (int p : owned) s.append(p).append(',');
        say(s.toString());
    }

    public static void main(String[] args) throws Exception {
        String topic = args[1];
        String protocol = args[3];
        Properties c = new Properties();
        c.put("bootstrap.servers", args[0]);
        c.put("group.id", args[2]);
        c.put("group.protocol", protocol);
        c.put("auto.offset.reset", "earliest");
        c.put("enable.auto.commit", "false");
        c.put("fetch.max.wait.ms", "100");
        c.put("max.poll.records", "50");
        if (protocol.equals("classic")) {
            c.put("session.timeout.ms", "6000");
            c.put("heartbeat.interval.ms", "500");
        }
        AtomicBoolean stop = new AtomicBoolean(false);
        Thread stdin = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in))) {
                String line;
                while ((line = in.readLine()) != null && !line.trim().equals("stop")) { }
            } catch (Exception e) {
                // End of input: stop all the same.
            }
            stop.set(true);
        });
        stdin.setDaemon(true);
        stdin.start();
        KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer());
        consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                commit(consumer, partitions);
                for (TopicPartition tp : partitions) {
                    owned.remove(tp.partition());
                    next.remove(tp);
                }
                printOwned();
            }

            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                for (TopicPartition tp : partitions) owned.add(tp.partition());
                printOwned();
            }

            public void onPartitionsLost(Collection<TopicPartition> partitions) {
                for (TopicPartition tp : partitions) {
                    owned.remove(tp.partition());
                    next.remove(tp);
                }
                printOwned();
            }
        });
        while (!stop.get()) {
            ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(100));
            for (ConsumerRecord<String, String> r : records) {
                say("REC " + r.partition() + " " + r.offset() + " " + r.value());
                next.put(new TopicPartition(r.topic(), r.partition()), r.offset() + 1);
            }
            if (!records.isEmpty()) commit(consumer, records.partitions());
        }
        consumer.close();
        say("CLOSED");
    }
}
