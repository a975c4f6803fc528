use super::*;

fn leader() -> LeaderState {
    LeaderState::new(0, 3, 7, &[0, 1, 2], &[0, 1, 2], 100, 1_000)
}

#[test]
fn the_high_watermark_waits_for_every_isr_member() {
    let mut l = leader();
    assert_eq!(l.high_watermark_bound(150), None, "positions unknown");
    l.record_fetch(1, 150, 0, 150, 1_010);
    assert_eq!(l.high_watermark_bound(150), None);
    l.record_fetch(2, 120, 0, 150, 1_010);
    assert_eq!(l.high_watermark_bound(150), Some(120));
    l.record_fetch(2, 150, 0, 150, 1_020);
    assert_eq!(l.high_watermark_bound(160), Some(150));
}

#[test]
fn a_follower_that_stops_catching_up_leaves_the_isr_after_the_lag_time() {
    let mut l = leader();
    l.record_fetch(1, 150, 0, 150, 1_000);
    l.record_fetch(2, 150, 0, 150, 1_000);
    // Follower 2 keeps fetching but never reaches the growing log end.
    l.record_fetch(1, 200, 0, 200, 20_000);
    l.record_fetch(2, 150, 0, 200, 20_000);
    assert_eq!(l.shrink_candidate(20_000, 30_000, 200), None);
    l.record_fetch(1, 300, 0, 300, 32_000);
    l.record_fetch(2, 200, 0, 300, 32_000);
    assert_eq!(
        l.shrink_candidate(32_000, 30_000, 300),
        None,
        "it reached the previous end"
    );
    l.record_fetch(1, 400, 0, 400, 70_000);
    l.record_fetch(2, 210, 0, 400, 70_000);
    assert_eq!(l.shrink_candidate(70_000, 30_000, 400), Some(vec![0, 1]));
}

#[test]
fn an_idle_follower_at_the_log_end_stays_in_the_isr() {
    let mut l = leader();
    l.record_fetch(1, 150, 0, 150, 1_000);
    l.record_fetch(2, 150, 0, 150, 1_000);
    // Nothing is appended; both followers wait in long polls longer than the lag limit.
    assert_eq!(l.shrink_candidate(60_000, 30_000, 150), None);
    assert_eq!(l.propose_shrink(60_000, 30_000, 150), None);
    // The leader appends; follower 1 fetches it, follower 2 is gone: only 2 has lagged.
    l.record_fetch(1, 170, 0, 170, 60_001);
    assert_eq!(l.shrink_candidate(60_002, 30_000, 170), Some(vec![0, 1]));
}

#[test]
fn a_pending_shrink_keeps_the_larger_isr_for_the_high_watermark() {
    let mut l = leader();
    l.record_fetch(1, 150, 0, 150, 1_000);
    l.record_fetch(2, 110, 0, 150, 1_000);
    l.pending_isr = Some(vec![0, 1]);
    assert_eq!(l.high_watermark_bound(150), Some(110));
    l.update_membership(8, &[0, 1, 2], &[0, 1], 2_000);
    assert_eq!(l.high_watermark_bound(150), Some(150));
}

#[test]
fn a_follower_rejoins_once_it_reaches_the_high_watermark_and_the_epoch_start() {
    let mut l = LeaderState::new(0, 3, 7, &[0, 1, 2], &[0, 1], 100, 1_000);
    l.record_fetch(2, 90, 0, 150, 1_000);
    assert_eq!(
        l.expand_candidate(2, 95),
        None,
        "below the leader epoch start"
    );
    l.record_fetch(2, 140, 0, 150, 1_100);
    assert_eq!(l.expand_candidate(2, 150), None, "below the high watermark");
    l.record_fetch(2, 150, 0, 150, 1_200);
    assert_eq!(l.expand_candidate(2, 150), Some(vec![0, 1, 2]));
    l.pending_isr = Some(vec![0, 1, 2]);
    assert_eq!(l.expand_candidate(2, 150), None, "already proposed");
}

#[test]
fn an_ineligible_follower_is_never_proposed() {
    let mut l = LeaderState::new(0, 3, 7, &[0, 1, 2], &[0, 1], 100, 1_000);
    for t in 0..1_000 {
        l.record_fetch(2, 150, 0, 150, 1_000 + t);
        assert_eq!(l.propose_expansion(2, 150, false, 1_000 + t), None);
    }
    assert_eq!(
        l.propose_expansion(2, 150, true, 2_000),
        Some(vec![0, 1, 2])
    );
    assert_eq!(l.pending_isr, Some(vec![0, 1, 2]));
}

#[test]
fn a_pending_change_survives_images_that_did_not_decide_it() {
    let mut l = LeaderState::new(0, 3, 7, &[0, 1, 2], &[0, 1], 100, 1_000);
    l.record_fetch(2, 150, 0, 150, 1_000);
    assert!(l.propose_expansion(2, 150, true, 1_000).is_some());
    // Images that changed something else carry the same partition epoch: still pending, so
    // the next fetches propose nothing.
    for t in 0..100 {
        assert!(!l.update_membership(7, &[0, 1, 2], &[0, 1], 1_001 + t));
        l.record_fetch(2, 150, 0, 150, 1_001 + t);
        assert_eq!(l.propose_expansion(2, 150, true, 1_001 + t), None);
    }
    // The image with the decision.
    assert!(l.update_membership(8, &[0, 1, 2], &[0, 1, 2], 1_200));
    assert_eq!(l.pending_isr, None);
    assert_eq!(l.isr, vec![0, 1, 2]);
}

#[test]
fn a_refused_change_is_retried_only_after_a_growing_back_off() {
    let mut l = LeaderState::new(0, 3, 7, &[0, 1, 2], &[0, 1], 100, 0);
    let mut proposals = Vec::new();
    // A follower that keeps fetching, caught up, every 10 ms for a minute, while the
    // controller refuses to add it (its broker is ineligible there but not yet in this
    // leader's image).
    for t in (0..60_000).step_by(10) {
        l.record_fetch(2, 150, 0, 150, t);
        if let Some(isr) = l.propose_expansion(2, 150, true, t) {
            proposals.push(t);
            l.isr_change_failed(7, &isr, IsrChangeFailure::Rejected, t);
        }
    }
    // 0, 0.5, 1.5, 3.5, 7.5, 15.5, 25.5, 35.5, 45.5, 55.5 s: not 6,000.
    assert_eq!(
        proposals,
        [0, 500, 1_500, 3_500, 7_500, 15_500, 25_500, 35_500, 45_500, 55_500]
    );
    // A new partition epoch starts the back-off over.
    assert!(l.update_membership(8, &[0, 1, 2], &[0, 1], 60_000));
    l.record_fetch(2, 150, 0, 150, 60_010);
    let isr = l.propose_expansion(2, 150, true, 60_010).unwrap();
    l.isr_change_failed(8, &isr, IsrChangeFailure::Rejected, 60_010);
    l.record_fetch(2, 150, 0, 150, 60_510);
    assert!(l.propose_expansion(2, 150, true, 60_510).is_some());
}

#[test]
fn a_refusal_for_stale_metadata_waits_for_the_newer_image() {
    let mut l = LeaderState::new(0, 3, 7, &[0, 1, 2], &[0, 1], 100, 0);
    l.record_fetch(2, 150, 0, 150, 0);
    let isr = l.propose_expansion(2, 150, true, 0).unwrap();
    l.isr_change_failed(7, &isr, IsrChangeFailure::StaleMetadata, 0);
    // Long after any back-off, nothing new while the newer image has not come.
    l.record_fetch(2, 150, 0, 150, 100_000);
    assert_eq!(l.propose_expansion(2, 150, true, 100_000), None);
    assert_eq!(l.pending_isr, Some(vec![0, 1, 2]));
    // It came, without the follower (another change won): propose again (no back-off left).
    assert!(l.update_membership(9, &[0, 1, 2], &[0, 1], 100_001));
    l.record_fetch(2, 150, 0, 150, 100_002);
    assert_eq!(
        l.propose_expansion(2, 150, true, 100_002),
        Some(vec![0, 1, 2])
    );
}

#[test]
fn a_late_failure_report_does_not_touch_a_newer_change() {
    let mut l = LeaderState::new(0, 3, 7, &[0, 1, 2], &[0, 1, 2], 100, 0);
    l.record_fetch(1, 150, 0, 150, 0);
    l.record_fetch(2, 150, 0, 150, 0);
    // A shrink is proposed at epoch 7 and decided (epoch 8) before its answer is read.
    l.record_fetch(1, 160, 0, 160, 40_000);
    let shrink = l.propose_shrink(40_000, 30_000, 160).unwrap();
    assert_eq!(shrink, vec![0, 1]);
    assert!(l.update_membership(8, &[0, 1, 2], &[0, 1], 40_001));
    // Follower 2 catches up again; its expansion is pending at epoch 8.
    l.record_fetch(2, 150, 0, 150, 40_002);
    let expansion = l.propose_expansion(2, 150, true, 40_002).unwrap();
    // The old shrink's (lost) answer arrives: it must not clear the expansion.
    l.isr_change_failed(7, &shrink, IsrChangeFailure::Unknown, 40_003);
    assert_eq!(l.pending_isr, Some(expansion));
}

#[test]
fn the_low_watermark_waits_for_every_live_follower_to_report_its_log_start() {
    let mut l = LeaderState::new(0, 3, 7, &[0, 1, 2], &[0, 1, 2], 100, 0);
    let all_alive = |_: i32| true;
    // Nobody fetched yet: unknown, so no DeleteRecords can complete.
    assert_eq!(l.low_watermark(120, all_alive), UNKNOWN_OFFSET);
    l.record_fetch(1, 150, 120, 150, 10);
    assert_eq!(l.low_watermark(120, all_alive), UNKNOWN_OFFSET);
    l.record_fetch(2, 150, 110, 150, 10);
    assert_eq!(l.low_watermark(120, all_alive), 110);
    l.record_fetch(2, 150, 130, 150, 20);
    assert_eq!(l.low_watermark(120, all_alive), 120);
    // A dead (fenced) follower does not hold it back.
    l.record_fetch(1, 150, 100, 150, 30);
    assert_eq!(l.low_watermark(120, all_alive), 100);
    assert_eq!(l.low_watermark(120, |id| id != 1), 120);
}
