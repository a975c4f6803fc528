//! Times the planners on a cluster of a given size, to size what the controller and operator
//! can plan in one go (the numbers in `docs/placement.md` come from here):
//!
//! ```text
//! cargo run --release -p weir-api --example placement_timing -- <topics> <partitions> <rf> <brokers-before> <brokers-after> [racks]
//! ```

use std::time::Instant;

use weir_api::placement::{
    assign_new_topic, drain_plan, rebalance_plan, validate, Assignment, BrokerInfo,
};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments are numbers"))
        .collect();
    let [topics, partitions, rf, before, after, rest @ ..] = args.as_slice() else {
        eprintln!("usage: placement_timing <topics> <partitions> <rf> <brokers-before> <brokers-after> [racks]");
        std::process::exit(2);
    };
    let racks = rest.first().copied().unwrap_or(0);
    let brokers = |n: usize| -> Vec<BrokerInfo> {
        (0..n)
            .map(|i| BrokerInfo {
                id: i as i32,
                rack: (racks > 0).then(|| format!("r{}", i % racks)),
            })
            .collect()
    };
    let (small, large) = (brokers(*before), brokers(*after));

    let started = Instant::now();
    let mut current = Assignment::new();
    for t in 0..*topics {
        let topic = assign_new_topic(&small, &current, *partitions as i32, *rf as i16).unwrap();
        current.topics.insert(format!("topic-{t}"), topic);
    }
    println!(
        "create {topics} x {partitions} partitions RF {rf} on {before} brokers: {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let plan = rebalance_plan(&large, &current).unwrap();
    println!(
        "rebalance onto {after} brokers: {} moves, {} leader changes, {:?}",
        plan.move_count(),
        plan.leader_change_count(),
        started.elapsed()
    );
    assert!(validate(&large, &plan.target).is_empty());

    let started = Instant::now();
    let drain = drain_plan(&large, &plan.target, &[large[large.len() - 1].id]).unwrap();
    println!(
        "drain one of {after} brokers: {} moves, {:?}",
        drain.move_count(),
        started.elapsed()
    );
}
