// A Java KafkaConsumer (which fetches through KIP-227 fetch sessions) on a topic of many
// partitions, driven line by line on stdin by tests/tests/fetch_sessions.rs:
//   assign A B   assign partitions A..B-1 (replacing the assignment; partitions new to it
//                start at the log start)
//   read N       poll until N records arrived in total, then print "READ N"
// Record i is "v<i>" in partition i % PARTITIONS at offset i / PARTITIONS; every record is
// checked on arrival (no gap, no repeat, right value). Exits non-zero with "MISMATCH" on the
// first wrong one; on end of input prints "OK <records>".
//
//   java -cp 'target/java-client-deps/*' tests/java/SessionConsumer.java BOOTSTRAP TOPIC PARTITIONS
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.time.Duration;
import java.time.Instant;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class SessionConsumer {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("MISMATCH: " + what);
            System.out.flush();
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        String topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        Properties c = new Properties();
        c.put("bootstrap.servers", args[0]);
        c.put("auto.offset.reset", "earliest");
        c.put("enable.auto.commit", "false");
        c.put("fetch.max.wait.ms", "100");
        Map<Integer, Long> next = new HashMap<>();
        long total = 0;
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        try (KafkaConsumer<String, String> consumer =
                     new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
            String line;
            while ((line = in.readLine()) != null) {
                String[] cmd = line.trim().split(" ");
                if (cmd[0].equals("assign")) {
                    int from = Integer.parseInt(cmd[1]);
                    int to = Integer.parseInt(cmd[2]);
                    List<TopicPartition> tps = new ArrayList<>();
                    for (int p = from; p < to; p++) tps.add(new TopicPartition(topic, p));
                    consumer.assign(tps);
                } else if (cmd[0].equals("read")) {
                    long want = Long.parseLong(cmd[1]);
                    Instant deadline = Instant.now().plusSeconds(60);
                    while (total < want) {
                        check(Instant.now().isBefore(deadline), "read " + total + " of " + want);
                        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(100))) {
                            long expected = next.getOrDefault(r.partition(), 0L);
                            check(r.offset() == expected,
                                    "partition " + r.partition() + " offset " + r.offset() + ", expected " + expected);
                            long i = r.offset() * partitions + r.partition();
                            check(r.value().equals("v" + i),
                                    "partition " + r.partition() + " offset " + r.offset() + ": " + r.value());
                            next.put(r.partition(), expected + 1);
                            total++;
                        }
                    }
                    System.out.println("READ " + total);
                    System.out.flush();
                }
            }
        }
        System.out.println("OK " + total);
    }
}
