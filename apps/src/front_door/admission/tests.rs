//! The admission's unit tests: places, the line, refusals, and the standing line's order and
//! places.

use super::*;

/// A place taken at once (one is free).
async fn a_place(admission: &Arc<Admission>) -> Place {
    admission
        .enter()
        .expect("room")
        .run()
        .await
        .expect("a place")
}

#[tokio::test]
async fn a_free_place_is_given_at_once_and_freed_on_drop() {
    let admission = Admission::new(2, Duration::from_millis(50), 10);
    let a = a_place(&admission).await;
    let _b = a_place(&admission).await;
    assert_eq!((admission.in_flight(), admission.waiting()), (2, 0));
    let c = admission.enter().expect("in line");
    assert_eq!(admission.waiting(), 1);
    drop(a);
    let _c = c.run().await.expect("the freed place");
    assert_eq!((admission.in_flight(), admission.waiting()), (2, 0));
}

#[tokio::test]
async fn a_waiter_that_gets_no_place_in_time_is_refused() {
    let admission = Admission::new(1, Duration::from_millis(30), 10);
    let _running = a_place(&admission).await;
    let started = Instant::now();
    let refused = admission.enter().expect("in line").run().await;
    assert!(matches!(refused, Err(Refusal::Waited(_))), "{refused:?}");
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!((admission.waiting(), admission.rejected()), (0, 1));
}

#[tokio::test]
async fn a_waiter_whose_wait_is_dropped_leaves_the_line() {
    let admission = Admission::new(1, Duration::from_secs(10), 10);
    let running = a_place(&admission).await;
    // Its client goes away, or its own timeout passes, while it waits for a place.
    let waiting = admission.enter().expect("in line").run();
    let gave_up = tokio::time::timeout(Duration::from_millis(20), waiting).await;
    assert!(gave_up.is_err(), "{gave_up:?}");
    assert_eq!(admission.waiting(), 0);
    drop(running);
    // Nothing waits and the place is free: the next request runs at once.
    let next = tokio::time::timeout(Duration::from_millis(100), a_place(&admission)).await;
    assert!(
        next.is_ok(),
        "a free place was not given: the line still counts a waiter"
    );
}

#[tokio::test]
async fn a_newcomer_that_would_wait_too_long_is_refused_at_once() {
    let admission = Admission::new(1, Duration::from_millis(11), 100);
    // Calls hold their place 5 ms: four waiting would wait 20 ms, a fifth 25 ms, over
    // the target's twice (the margin).
    admission.lock().hold = 0.005;
    let _running = a_place(&admission).await;
    let admitted: Vec<_> = (0..4)
        .map(|_| admission.enter().expect("in line"))
        .collect();
    let fifth = admission.enter();
    assert!(matches!(fifth, Err(Refusal::WouldWait(_))), "{fifth:?}");
    drop(admitted);
    assert_eq!((admission.waiting(), admission.rejected()), (0, 1));
}

#[tokio::test]
async fn the_line_is_capped_and_a_dropped_waiter_passes_its_place_on() {
    let admission = Admission::new(1, Duration::from_secs(10), 2);
    let running = a_place(&admission).await;
    let gone = admission.enter().expect("in line");
    let next = admission.enter().expect("in line");
    assert!(matches!(admission.enter(), Err(Refusal::LineFull(2))));
    drop(gone);
    assert_eq!(admission.waiting(), 1);
    drop(running);
    let _next = next
        .run()
        .await
        .expect("the place skipped the dropped ticket");
    assert_eq!((admission.in_flight(), admission.waiting()), (1, 0));
}

#[tokio::test]
async fn a_draining_line_serves_the_first_come() {
    let admission = Admission::new(1, Duration::from_secs(10), 10);
    let running = a_place(&admission).await;
    let first = admission.enter().expect("in line");
    let second = admission.enter().expect("in line");
    drop(running);
    let _first = first
        .run()
        .await
        .expect("the first in line is served first");
    assert_eq!(admission.waiting(), 1);
    drop(second);
}

#[tokio::test]
async fn a_line_old_for_a_moment_still_serves_the_first_come() {
    let admission = Admission::new(1, Duration::from_millis(400), 10);
    let running = a_place(&admission).await;
    let oldest = admission.enter().expect("in line");
    tokio::time::sleep(Duration::from_millis(210)).await;
    let newest = admission.enter().expect("in line");
    // The oldest is over half the target old (210 > 200 ms), but has not been
    // so at places given out for STANDING_FOR: this is the first.
    drop(running);
    let _oldest = oldest.run().await.expect("the first come is served first");
    drop(newest);
}

/// Makes the line of an admission with one place (400 ms target: a waiter is old at 200 ms)
/// old: two wait until the first is old, then the place is given out, first come first served
/// (the line may stand from now on). Returns that place and the second waiter, old too.
async fn make_the_line_old(admission: &Arc<Admission>) -> (Place, Ticket) {
    let running = a_place(admission).await;
    let oldest = admission.enter().expect("in line");
    let second = admission.enter().expect("in line");
    tokio::time::sleep(Duration::from_millis(210)).await;
    drop(running);
    let first_served = oldest.run().await.expect("first come first served");
    (first_served, second)
}

/// `requests` more come and give up at once: the line grew by that many without seating any,
/// as it does under an overload.
fn grow(admission: &Arc<Admission>, requests: usize) {
    for _ in 0..requests {
        drop(admission.enter().expect("in line"));
    }
}

#[tokio::test]
async fn a_line_that_does_not_grow_never_stands() {
    let admission = Admission::new(1, Duration::from_millis(400), 10);
    let (first_served, second) = make_the_line_old(&admission).await;
    // A closed loop: one request comes for each one seated, no more.
    let next = admission.enter().expect("in line");
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(first_served);
    let _second = second
        .run()
        .await
        .expect("old for long, but first come first served");
    assert_eq!(admission.waiting(), 1);
    drop(next);
}

#[tokio::test]
async fn a_standing_line_serves_the_newest() {
    let admission = Admission::new(1, Duration::from_millis(400), 10);
    let (first_served, second) = make_the_line_old(&admission).await;
    grow(&admission, 3);
    let newest = admission.enter().expect("in line");
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(first_served);
    let _newest = newest.run().await.expect("the newest is served first");
    let started = Instant::now();
    let refused = second.run().await;
    assert!(matches!(refused, Err(Refusal::Waited(_))), "{refused:?}");
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[tokio::test]
async fn a_standing_line_serves_the_newest_of_a_burst_it_cannot_drain_in_time() {
    let admission = Admission::new(1, Duration::from_millis(400), 10);
    let (first_served, old) = make_the_line_old(&admission).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Standing, and the old waiter goes (as one refused after waiting its target would):
    // then a burst of young ones comes, longer than the place can serve in half the target.
    drop(old);
    grow(&admission, 3);
    let first = admission.enter().expect("in line");
    let second = admission.enter().expect("in line");
    let newest = admission.enter().expect("in line");
    admission.lock().hold = 1.0;
    drop(first_served);
    let newest = newest
        .run()
        .await
        .expect("the newest of the burst is served first");
    assert_eq!(admission.waiting(), 2);
    // Once the rest would have a place in time, the line serves the first come again.
    admission.lock().hold = 0.01;
    drop(newest);
    let _first = first.run().await.expect("the first come");
    assert_eq!(admission.waiting(), 1);
    drop(second);
}

/// Makes the line of an admission with two places, one while standing (400 ms target), stand
/// with one call running (returned) and one waiting (returned), the standing place taken.
async fn stand_with_one_running(admission: &Arc<Admission>) -> (Place, Ticket) {
    admission.set_limit(2, 1);
    let first = a_place(admission).await;
    let second = a_place(admission).await;
    let oldest = admission.enter().expect("in line");
    let next = admission.enter().expect("in line");
    tokio::time::sleep(Duration::from_millis(210)).await;
    // Old, but not yet for STANDING_FOR: both places are given out.
    drop(first);
    let oldest = oldest.run().await.expect("first come first served");
    tokio::time::sleep(Duration::from_millis(30)).await;
    grow(admission, 6);
    // Standing: one place only, and one is taken.
    drop(second);
    assert_eq!((admission.in_flight(), admission.waiting()), (1, 1));
    (oldest, next)
}

#[tokio::test]
async fn a_standing_line_gives_out_only_its_standing_places() {
    let admission = Admission::new(2, Duration::from_millis(400), 10);
    let (oldest, next) = stand_with_one_running(&admission).await;
    drop(oldest);
    let _next = next.run().await.expect("the standing place");
    assert_eq!((admission.in_flight(), admission.waiting()), (1, 0));
}

/// An admission with two places (400 ms target) standing as [`stand_with_one_running`] makes
/// it, then the interval between ends set: the place held back is due at `interval - lead`
/// after the last end (returned), and the running call is due to end at `interval`, where the
/// lead is [`EARLY_BY`] of the interval.
async fn stand_with_ends_apart(interval: Duration) -> (Arc<Admission>, Place, Ticket, Instant) {
    let admission = Admission::new(2, Duration::from_millis(400), 10);
    let (running, next) = stand_with_one_running(&admission).await;
    let last_end = Instant::now();
    // The interval times the next end, not the running call's hold: that call got its place
    // before the last end and waited at its consumer, so by its hold it would be due now.
    admission.lock().interval = interval.as_secs_f64();
    (admission, running, next, last_end)
}

#[tokio::test]
async fn a_standing_line_gives_a_due_call_its_successor_early() {
    // Due at 140 ms, the running call due to end at 200 ms.
    let (admission, running, old, last_end) =
        stand_with_ends_apart(Duration::from_millis(200)).await;
    let old = tokio::spawn(old.run());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A request that will have come within the lead (60 ms) when the place is due.
    let next = tokio::spawn(admission.enter().expect("in line").run());
    tokio::time::sleep(Duration::from_millis(25)).await;
    assert!(!next.is_finished(), "the successor's place came too early");
    // ... and gets it while the running call still runs, before it is due to end.
    let _next = next.await.expect("the wait").expect("the place held back");
    let early = last_end.elapsed();
    assert!(
        early >= Duration::from_millis(130) && early < Duration::from_millis(190),
        "{early:?}"
    );
    assert!(!old.is_finished(), "the newest waiter is served first");
    assert_eq!((admission.in_flight(), admission.waiting()), (2, 1));
    drop(running);
}

#[tokio::test]
async fn a_due_place_is_held_for_a_newcomer() {
    // Due at 140 ms, the running call due to end at 200 ms.
    let (admission, running, old, last_end) =
        stand_with_ends_apart(Duration::from_millis(200)).await;
    let old = tokio::spawn(old.run());
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Due, but its only waiter came long before the lead: the place is held for a newcomer,
    // who gets it at once.
    assert!(
        !old.is_finished(),
        "the place went to a waiter older than the lead"
    );
    assert!(last_end.elapsed() < Duration::from_millis(190));
    let newcomer = admission.enter().expect("in line").run();
    let newcomer = tokio::time::timeout(Duration::from_millis(20), newcomer).await;
    let _newcomer = newcomer.expect("at once").expect("the place held");
    assert!(!old.is_finished(), "the newest waiter is served first");
    drop(running);
}

#[tokio::test]
async fn a_due_place_no_newcomer_takes_goes_out_as_its_running_call_is_due_to_end() {
    // Due at 70 ms, the running call due to end at 100 ms; the old waiter is refused at its
    // target, about 160 ms after the last end.
    let (_admission, running, old, last_end) =
        stand_with_ends_apart(Duration::from_millis(100)).await;
    let _old = old.run().await.expect("the place held back");
    let given = last_end.elapsed();
    assert!(
        given >= Duration::from_millis(90) && given < Duration::from_millis(150),
        "{given:?}"
    );
    drop(running);
}

#[tokio::test]
async fn ends_are_timed_only_while_the_consumers_stay_busy() {
    let admission = Admission::new(2, Duration::from_secs(1), 10);
    let first = a_place(&admission).await;
    let second = a_place(&admission).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The second had its place while the first ran: the time between the two ends is one
    // call's run.
    drop(second);
    let interval = admission.lock().interval;
    assert!((0.015..0.1).contains(&interval), "{interval}");
    // A call that got its place after the last end found a consumer idle: not an interval.
    let third = a_place(&admission).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(third);
    assert_eq!(admission.lock().interval, interval);
}

#[tokio::test]
async fn more_places_go_to_the_waiters() {
    let admission = Admission::new(1, Duration::from_secs(10), 10);
    let _running = a_place(&admission).await;
    let waiter = admission.enter().expect("in line");
    admission.set_limit(2, 2);
    let _place = waiter.run().await.expect("the new place");
    assert_eq!(admission.in_flight(), 2);
}
