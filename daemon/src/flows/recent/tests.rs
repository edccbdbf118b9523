use super::*;

fn texts(lines: &[Arc<str>]) -> Vec<&str> {
    lines.iter().map(|line| &**line).collect()
}

#[test]
fn the_ring_keeps_the_newest_records_up_to_the_count() {
    let recent = RecentFlows::new(RecentLimits {
        records: 3,
        bytes: 1 << 20,
    });
    recent.push_lines(b"r1\nr2\n");
    recent.push_lines(b"r3\nr4\nr5\n");
    assert_eq!(texts(&recent.lines()), ["r3", "r4", "r5"]);
}

#[test]
fn the_ring_keeps_the_newest_records_up_to_the_bytes() {
    let recent = RecentFlows::new(RecentLimits {
        records: 100,
        bytes: 10,
    });
    recent.push_lines(b"aaaa\nbbbb\ncccc\n");
    assert_eq!(texts(&recent.lines()), ["bbbb", "cccc"]);
    // A record larger than the whole ring is not kept.
    recent.push_lines(b"0123456789a\n");
    assert_eq!(texts(&recent.lines()), [] as [&str; 0]);
    recent.push_lines(b"dd\n\n");
    assert_eq!(texts(&recent.lines()), ["dd"]);
}

#[test]
fn a_write_that_is_not_utf8_keeps_its_lines_with_the_bad_bytes_replaced() {
    let recent = RecentFlows::new(RecentLimits::DEFAULT);
    recent.push_lines("é\n".as_bytes());
    recent.push_lines(b"ok\nbad \xff\n");
    assert_eq!(texts(&recent.lines()), ["é", "ok", "bad \u{FFFD}"]);
}

#[tokio::test]
async fn a_follower_gets_every_line_after_those_held() {
    let recent = Arc::new(RecentFlows::new(RecentLimits::DEFAULT));
    recent.push_lines(b"old\n");
    let (held, mut follower) = recent.follow();
    recent.push_lines(b"new1\nnew2\n");
    assert_eq!(texts(&held), ["old"]);
    assert_eq!(follower.next().await, Some(Followed::Line("new1".into())));
    assert_eq!(follower.next().await, Some(Followed::Line("new2".into())));
    drop(recent);
    assert_eq!(follower.next().await, None);
}

#[tokio::test]
async fn a_waiting_follower_wakes_for_a_line_pushed_later() {
    let recent = Arc::new(RecentFlows::new(RecentLimits::DEFAULT));
    let (_, mut follower) = recent.follow();
    let pusher = recent.clone();
    let waiting = tokio::spawn(async move { follower.next().await });
    tokio::task::yield_now().await;
    pusher.push_lines(b"late\n");
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await;
    assert_eq!(got.unwrap().unwrap(), Some(Followed::Line("late".into())));
}

#[tokio::test]
async fn a_follower_gets_lines_past_a_batch_and_across_writes_in_order() {
    let recent = Arc::new(RecentFlows::new(RecentLimits::DEFAULT));
    let (_, mut follower) = recent.follow();
    for write in 0..3 {
        let lines: String = (0..FOLLOW_BATCH)
            .map(|n| format!("{write}-{n}\n"))
            .collect();
        recent.push_lines(lines.as_bytes());
    }
    for write in 0..3 {
        for n in 0..FOLLOW_BATCH {
            let line = format!("{write}-{n}");
            assert_eq!(follower.next().await, Some(Followed::Line(line.into())));
        }
    }
}

#[tokio::test]
async fn a_follower_further_behind_than_the_ring_holds_is_told_how_many_lines_it_lost() {
    let recent = Arc::new(RecentFlows::new(RecentLimits {
        records: 5,
        bytes: 1 << 20,
    }));
    let (_, mut follower) = recent.follow();
    let lines: String = (0..8).map(|n| format!("{n}\n")).collect();
    // The exporter is not held up by the follower that does not read.
    recent.push_lines(lines.as_bytes());
    assert_eq!(follower.next().await, Some(Followed::Lost(3)));
    for n in 3..8 {
        assert_eq!(
            follower.next().await,
            Some(Followed::Line(n.to_string().into()))
        );
    }
    // Lost again while it holds lines it took: those are still its own.
    recent.push_lines(b"8\n");
    assert_eq!(follower.next().await, Some(Followed::Line("8".into())));
    recent.push_lines(b"9\n10\n11\n12\n13\n14\n15\n");
    assert_eq!(follower.next().await, Some(Followed::Lost(2)));
    assert_eq!(follower.next().await, Some(Followed::Line("11".into())));
}
