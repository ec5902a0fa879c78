//! Unit tests of the admission building blocks: [`Cidr`] parsing and
//! matching, [`AccessList`], [`TokenBucket`] arithmetic, [`PerIpTable`]
//! admission, release and sweeping (single- and multi-threaded), and
//! [`ReadThrottle`] grants.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::per_ip::SWEEP_MIN;
use super::token_bucket::TokenBucket;
use super::{AccessList, Cidr, IpTicket, PerIpTable, ReadThrottle, Refusal};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A base time an hour ahead of the clock: a ticket's `Drop` uses the
/// later of the real clock and the latest admit time, so with admit
/// times in the future, releases happen at a known time.
fn future() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

// --- Cidr ---

#[test]
fn cidr_parses_v4_and_v6_networks() {
    let net = cidr("10.0.0.0/8");
    assert_eq!(net.network(), ip("10.0.0.0"));
    assert_eq!(net.prefix_len(), 8);
    assert_eq!(net.to_string(), "10.0.0.0/8");

    let net = cidr("2001:db8::/32");
    assert_eq!(net.network(), ip("2001:db8::"));
    assert_eq!(net.prefix_len(), 32);
    assert_eq!(net.to_string(), "2001:db8::/32");

    assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
    assert_eq!(cidr("::/0").to_string(), "::/0");
    assert_eq!(cidr("  10.0.0.0/8 ").to_string(), "10.0.0.0/8");
}

#[test]
fn cidr_bare_address_is_a_single_host() {
    let net = cidr("192.168.1.7");
    assert_eq!(net.to_string(), "192.168.1.7/32");
    assert!(net.contains(ip("192.168.1.7")));
    assert!(!net.contains(ip("192.168.1.8")));

    let net = cidr("::1");
    assert_eq!(net.to_string(), "::1/128");
    assert!(net.contains(ip("::1")));
    assert!(!net.contains(ip("::2")));
}

#[test]
fn cidr_ignores_host_bits() {
    assert_eq!(cidr("10.1.2.3/8"), cidr("10.0.0.0/8"));
    assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
    assert_eq!(cidr("192.168.1.255/23").to_string(), "192.168.0.0/23");
    assert_eq!(cidr("2001:db8:ffff::1/32").to_string(), "2001:db8::/32");
    assert_eq!(cidr("255.255.255.255/0").to_string(), "0.0.0.0/0");
}

#[test]
fn cidr_contains_respects_the_prefix() {
    let net = cidr("192.168.0.0/23");
    assert!(net.contains(ip("192.168.0.0")));
    assert!(net.contains(ip("192.168.1.255")));
    assert!(!net.contains(ip("192.168.2.0")));
    assert!(!net.contains(ip("192.167.255.255")));

    assert!(cidr("0.0.0.0/0").contains(ip("1.2.3.4")));
    assert!(cidr("::/0").contains(ip("2001:db8::1")));

    let net = cidr("2001:db8::/32");
    assert!(net.contains(ip("2001:db8:1234::5")));
    assert!(!net.contains(ip("2001:db9::")));
}

#[test]
fn cidr_families_do_not_mix() {
    assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
    assert!(!cidr("::/0").contains(ip("10.0.0.1")));
    // A v4 client of a dual-stack listener is IPv4, not part of ::/0.
    assert!(!cidr("::/0").contains(ip("::ffff:10.0.0.1")));
}

#[test]
fn cidr_matches_ipv4_mapped_addresses_as_ipv4() {
    let net = cidr("10.0.0.0/8");
    assert!(net.contains(ip("::ffff:10.9.8.7")));
    assert!(!net.contains(ip("::ffff:11.0.0.1")));
    assert!(cidr("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
    // The IPv4-compatible form (deprecated ::a.b.c.d) is not folded.
    assert!(!net.contains(ip("::10.0.0.1")));
}

#[test]
fn cidr_written_in_the_mapped_range_is_ipv4() {
    let net = cidr("::ffff:10.0.0.0/104");
    assert_eq!(net.to_string(), "10.0.0.0/8");
    assert!(net.contains(ip("10.1.1.1")));
    assert!(net.contains(ip("::ffff:10.1.1.1")));
    assert_eq!(cidr("::ffff:1.2.3.4").to_string(), "1.2.3.4/32");
}

#[test]
fn cidr_rejects_bad_prefixes_naming_the_value() {
    let cases = [
        ("10.0.0.0/33", "prefix length above 32"),
        ("::/129", "prefix length above 128"),
        ("10.0.0.0/", "prefix length is not a number"),
        ("10.0.0.0/x", "prefix length is not a number"),
        ("10.0.0.0/+8", "prefix length is not a number"),
        ("10.0.0.0/-1", "prefix length is not a number"),
        ("10.0.0.0/8/8", "prefix length is not a number"),
        ("10.0.0.0/1000", "prefix length is not a number"),
        ("10.0.0.0/ 8", "prefix length is not a number"),
    ];
    for (value, reason) in cases {
        let err = value.parse::<Cidr>().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("'{value}' is not a valid CIDR ({reason})"),
            "{value}"
        );
    }
}

#[test]
fn cidr_rejects_garbage() {
    for value in [
        "",
        "   ",
        "garbage",
        "10.0.0",
        "10.0.0.256",
        "010.0.0.1",
        "10.0.0.0.0/8",
        "[::1]/128",
        "fe80::1%eth0",
        "/8",
        "10.0.0.0 /8",
        "example.com/8",
    ] {
        let err = value.parse::<Cidr>().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("'{value}' is not a valid CIDR (")),
            "{msg}"
        );
    }
    assert_eq!(
        "".parse::<Cidr>().unwrap_err().to_string(),
        "'' is not a valid CIDR (empty)"
    );
    assert_eq!(
        "garbage".parse::<Cidr>().unwrap_err().to_string(),
        "'garbage' is not a valid CIDR (not an IP address)"
    );
}

#[test]
fn cidr_new_checks_the_prefix() {
    assert!(Cidr::new(ip("10.0.0.0"), 33).is_none());
    assert!(Cidr::new(ip("::"), 129).is_none());
    assert_eq!(Cidr::new(ip("10.1.2.3"), 16), Some(cidr("10.1.0.0/16")));
    assert_eq!(
        Cidr::new(ip("::ffff:10.1.2.3"), 112),
        Some(cidr("10.1.0.0/16"))
    );
}

#[test]
fn cidr_display_round_trips() {
    for s in [
        "10.0.0.0/8",
        "1.2.3.4/32",
        "::1/128",
        "2001:db8::/32",
        "0.0.0.0/0",
    ] {
        assert_eq!(cidr(&cidr(s).to_string()), cidr(s));
    }
}

// --- AccessList ---

#[test]
fn access_list_empty_allows_everyone() {
    let list = AccessList::default();
    assert!(list.is_open());
    assert!(list.permits(ip("1.2.3.4")));
    assert!(list.permits(ip("::1")));
}

#[test]
fn access_list_allow_restricts() {
    let list = AccessList::new(vec![cidr("10.0.0.0/8"), cidr("::1")], vec![]);
    assert!(!list.is_open());
    assert!(list.permits(ip("10.2.3.4")));
    assert!(list.permits(ip("::ffff:10.2.3.4")));
    assert!(list.permits(ip("::1")));
    assert!(!list.permits(ip("11.0.0.1")));
    assert!(!list.permits(ip("::2")));
}

#[test]
fn access_list_deny_wins_over_allow() {
    let list = AccessList::new(
        vec![cidr("10.0.0.0/8")],
        vec![cidr("10.1.0.0/16"), cidr("10.2.3.4")],
    );
    assert!(list.permits(ip("10.0.0.1")));
    assert!(!list.permits(ip("10.1.2.3")));
    assert!(!list.permits(ip("10.2.3.4")));
    assert!(!list.permits(ip("::ffff:10.2.3.4")));
    assert!(list.permits(ip("10.2.3.5")));
    assert!(!list.permits(ip("192.168.0.1")), "not in the allow list");
}

#[test]
fn access_list_deny_only_allows_the_rest() {
    let list = AccessList::new(vec![], vec![cidr("192.168.0.0/16")]);
    assert!(!list.permits(ip("192.168.5.5")));
    assert!(list.permits(ip("10.0.0.1")));
    assert!(list.permits(ip("2001:db8::1")));
}

// --- TokenBucket ---

#[test]
fn bucket_starts_full_and_empties() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(3, 3, t0);
    assert!(b.is_full(t0));
    assert!(b.try_take(t0));
    assert!(!b.is_full(t0));
    assert!(b.try_take(t0));
    assert!(b.try_take(t0));
    assert!(!b.try_take(t0), "burst of 3");
    assert_eq!(b.available(t0), 0);
}

#[test]
fn bucket_refills_at_the_rate() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(10, 10, t0);
    assert_eq!(b.take_up_to(100, t0), 10);
    // 10 per second: one token per 100 ms, exactly.
    assert_eq!(b.available(t0 + ms(99)), 0);
    assert_eq!(b.available(t0 + ms(100)), 1);
    assert_eq!(b.available(t0 + ms(550)), 5);
    assert!(!b.is_full(t0 + ms(999)));
    assert!(b.is_full(t0 + ms(1000)));
    // Never above capacity, however long it waited.
    assert_eq!(b.available(t0 + Duration::from_secs(3600)), 10);
}

#[test]
fn bucket_keeps_fractional_credit() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(1, 3, t0);
    assert!(b.try_take(t0));
    // 3 per second: a token every 333.33.. ms; partial progress adds up.
    assert!(!b.try_take(t0 + ms(200)));
    assert!(!b.try_take(t0 + ms(333)));
    assert!(b.try_take(t0 + ms(334)));
}

#[test]
fn bucket_wait_time_is_exact() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(10, 10, t0);
    assert_eq!(b.wait_time(1, t0), Duration::ZERO);
    b.take_up_to(10, t0);
    assert_eq!(b.wait_time(1, t0), ms(100));
    assert_eq!(b.wait_time(5, t0), ms(500));
    // More than the capacity: wait for a full bucket.
    assert_eq!(b.wait_time(50, t0), ms(1000));
    assert_eq!(b.wait_time(1, t0 + ms(30)), ms(70));
    // Rounds up: 3 per second, one token takes 333_333_334 ns.
    let mut b = TokenBucket::new(1, 3, t0);
    b.take(1);
    let wait = b.wait_time(1, t0);
    assert_eq!(wait, Duration::from_nanos(333_333_334));
    assert!(b.try_take(t0 + wait));
}

#[test]
fn bucket_ignores_time_going_backwards() {
    let t0 = Instant::now();
    let later = t0 + ms(500);
    let mut b = TokenBucket::new(2, 2, t0);
    b.take_up_to(2, t0);
    assert_eq!(b.available(later), 1);
    // An older timestamp adds nothing and does not move time back.
    assert_eq!(b.available(t0 + ms(100)), 1);
    assert_eq!(b.available(later + ms(500)), 2);
}

#[test]
fn bucket_take_never_goes_below_empty() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(5, 5, t0);
    b.take(100);
    assert_eq!(b.available(t0), 0);
    assert_eq!(b.available(t0 + ms(200)), 1);
}

#[test]
fn bucket_zero_rate_never_refills() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(1, 0, t0);
    assert!(b.try_take(t0));
    assert!(!b.try_take(t0 + Duration::from_secs(100)));
    assert_eq!(b.wait_time(1, t0), Duration::MAX);
}

#[test]
fn bucket_huge_rates_do_not_overflow() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(u64::MAX, u64::MAX, t0);
    assert_eq!(b.take_up_to(u64::MAX, t0), u64::MAX);
    assert_eq!(
        b.available(t0 + Duration::from_secs(1_000_000_000)),
        u64::MAX
    );
}

// --- PerIpTable ---

#[test]
fn table_with_both_limits_off_tracks_nothing() {
    let table = PerIpTable::new(0, 0);
    assert!(table.is_off());
    let t0 = future();
    let tickets: Vec<_> = (0..100)
        .map(|_| table.admit(ip("10.0.0.1"), t0).unwrap())
        .collect();
    assert!(table.is_empty());
    assert_eq!(table.open_count(ip("10.0.0.1")), 0);
    drop(tickets);
    assert!(table.is_empty());
}

#[test]
fn table_enforces_the_count_limit_and_releases_on_drop() {
    let table = PerIpTable::new(2, 0);
    let t0 = future();
    let a = ip("10.0.0.1");
    let first = table.admit(a, t0).unwrap();
    let second = table.admit(a, t0).unwrap();
    assert_eq!(table.open_count(a), 2);
    assert_eq!(table.admit(a, t0).unwrap_err(), Refusal::PerIpLimit);
    assert_eq!(table.open_count(a), 2, "a refusal does not count");
    // Another address has its own count.
    let other = table.admit(ip("10.0.0.2"), t0).unwrap();
    drop(first);
    assert_eq!(table.open_count(a), 1);
    let third = table.admit(a, t0).unwrap();
    assert_eq!(table.admit(a, t0).unwrap_err(), Refusal::PerIpLimit);
    drop((second, third, other));
    assert_eq!(table.open_count(a), 0);
    assert!(table.is_empty(), "entries without a bucket go on release");
}

#[test]
fn table_counts_mapped_ipv4_as_ipv4() {
    let table = PerIpTable::new(1, 0);
    let t0 = future();
    let ticket = table.admit(ip("::ffff:10.0.0.1"), t0).unwrap();
    assert_eq!(ticket.ip(), ip("10.0.0.1"));
    assert_eq!(table.open_count(ip("10.0.0.1")), 1);
    assert_eq!(
        table.admit(ip("10.0.0.1"), t0).unwrap_err(),
        Refusal::PerIpLimit
    );
}

#[test]
fn table_rate_limit_allows_a_burst_then_the_rate() {
    let table = PerIpTable::new(0, 3);
    let t0 = future();
    let a = ip("192.168.1.1");
    for _ in 0..3 {
        drop(table.admit(a, t0).unwrap());
    }
    assert_eq!(table.admit(a, t0).unwrap_err(), Refusal::RateLimit);
    assert_eq!(
        table.admit(a, t0 + ms(300)).unwrap_err(),
        Refusal::RateLimit
    );
    // 3 per second: one more every 333.3 ms.
    drop(table.admit(a, t0 + ms(334)).unwrap());
    assert_eq!(
        table.admit(a, t0 + ms(334)).unwrap_err(),
        Refusal::RateLimit
    );
    // Another address has its own bucket.
    drop(table.admit(ip("192.168.1.2"), t0).unwrap());
    // A long pause refills the burst, no more.
    let later = t0 + Duration::from_secs(60);
    for _ in 0..3 {
        drop(table.admit(a, later).unwrap());
    }
    assert_eq!(table.admit(a, later).unwrap_err(), Refusal::RateLimit);
}

#[test]
fn table_checks_the_count_before_the_rate() {
    let table = PerIpTable::new(1, 2);
    let t0 = future();
    let a = ip("10.0.0.1");
    let held = table.admit(a, t0).unwrap();
    // At the cap: refused for the count, and no token taken.
    for _ in 0..5 {
        assert_eq!(table.admit(a, t0).unwrap_err(), Refusal::PerIpLimit);
    }
    drop(held);
    // One token left of the burst of two.
    let next = table.admit(a, t0).unwrap();
    drop(next);
    assert_eq!(table.admit(a, t0).unwrap_err(), Refusal::RateLimit);
    assert_eq!(table.open_count(a), 0, "a rate refusal does not count");
}

#[test]
fn table_shrinks_back_to_empty_once_buckets_refill() {
    let table = PerIpTable::new(4, 10);
    let t0 = future();
    let tickets: Vec<_> = (0..50u8)
        .flat_map(|i| {
            let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, i));
            [table.admit(a, t0).unwrap(), table.admit(a, t0).unwrap()]
        })
        .collect();
    assert_eq!(table.len(), 50);
    drop(tickets);
    // Closed, but the buckets are not full yet: the entries remember the
    // rate until they refill.
    assert_eq!(table.len(), 50);
    table.sweep(t0 + ms(100));
    assert_eq!(table.len(), 50, "two tokens take 200 ms to refill");
    table.sweep(t0 + ms(200));
    assert!(table.is_empty());
}

#[test]
fn table_release_removes_an_entry_whose_bucket_is_already_full() {
    let table = PerIpTable::new(0, 10);
    let t0 = future();
    let a = ip("10.0.0.1");
    let ticket = table.admit(a, t0).unwrap();
    // Time passes (another admit moves the table's clock), the bucket
    // refills while the connection is open; closing it leaves nothing.
    drop(
        table
            .admit(ip("10.0.0.2"), t0 + Duration::from_secs(5))
            .unwrap(),
    );
    drop(ticket);
    assert_eq!(table.open_count(a), 0);
    assert_eq!(
        table.len(),
        1,
        "only 10.0.0.2, whose token is still missing"
    );
}

#[test]
fn table_sweeps_idle_entries_as_it_grows() {
    let table = PerIpTable::new(0, 1);
    let t0 = future();
    // Many addresses, one connection each, one per millisecond: each entry
    // stays (its bucket needs a second to refill) until a sweep finds it
    // full again. The map must stay bounded.
    let mut largest = 0;
    for i in 0..20_000u32 {
        let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        let now = t0 + ms(u64::from(i));
        drop(table.admit(a, now).unwrap());
        largest = largest.max(table.len());
    }
    // About 1000 addresses are active in any one second.
    assert!(largest <= 2 * SWEEP_MIN, "table grew to {largest}");
    table.sweep(t0 + Duration::from_secs(30));
    assert!(table.is_empty());
}

#[test]
fn ticket_is_send() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<IpTicket>();
    assert_send::<Arc<PerIpTable>>();
}

#[test]
fn concurrent_admit_and_release_keep_counts_exact() {
    const MAX: u32 = 3;
    let table = PerIpTable::new(MAX, 0);
    let addrs = [ip("10.0.0.1"), ip("10.0.0.2"), ip("::1")];
    let held: Arc<[AtomicU32; 3]> = Arc::new(Default::default());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let table = Arc::clone(&table);
            let held = Arc::clone(&held);
            thread::spawn(move || {
                let mut admitted = 0u32;
                let mut tickets = Vec::new();
                for i in 0..3000usize {
                    let k = (i + t) % addrs.len();
                    if let Ok(ticket) = table.admit(addrs[k], Instant::now()) {
                        admitted += 1;
                        let now_held = held[k].fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now_held <= MAX, "{now_held} tickets held for one address");
                        tickets.push((k, ticket));
                    }
                    // Release in a different order from admission, now and then.
                    if i % 3 == 0 || tickets.len() > 2 {
                        while let Some((k, ticket)) = tickets.pop() {
                            held[k].fetch_sub(1, Ordering::SeqCst);
                            drop(ticket);
                        }
                    }
                }
                for (k, ticket) in tickets {
                    held[k].fetch_sub(1, Ordering::SeqCst);
                    drop(ticket);
                }
                admitted
            })
        })
        .collect();
    let admitted: u32 = threads.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(admitted > 0);
    for a in addrs {
        assert_eq!(table.open_count(a), 0);
    }
    assert!(table.is_empty());
}

#[test]
fn tickets_released_on_other_threads() {
    let table = PerIpTable::new(10, 0);
    let t0 = Instant::now();
    let a = ip("10.0.0.1");
    let tickets: Vec<_> = (0..10).map(|_| table.admit(a, t0).unwrap()).collect();
    assert_eq!(table.admit(a, t0).unwrap_err(), Refusal::PerIpLimit);
    let handles: Vec<_> = tickets
        .into_iter()
        .map(|ticket| thread::spawn(move || drop(ticket)))
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(table.open_count(a), 0);
    assert!(table.is_empty());
}

// --- ReadThrottle ---

#[test]
fn throttle_starts_with_one_second_of_bytes() {
    let t0 = Instant::now();
    let mut th = ReadThrottle::new(1000, t0);
    assert_eq!(th.allowance(4096, t0), Ok(1000));
    assert_eq!(th.allowance(100, t0), Ok(100));
    assert_eq!(th.allowance(0, t0), Ok(0));
}

#[test]
fn throttle_grants_what_was_consumed_back_at_the_rate() {
    let t0 = Instant::now();
    let mut th = ReadThrottle::new(1000, t0);
    th.consume(1000);
    // Empty: wait for 50 ms worth (1000 / 20 = 50 bytes), not one byte.
    assert_eq!(th.allowance(4096, t0), Err(ms(50)));
    assert_eq!(th.allowance(4096, t0 + ms(20)), Err(ms(30)));
    assert_eq!(th.allowance(4096, t0 + ms(50)), Ok(50));
    th.consume(50);
    // A small read only waits for what it wants.
    assert_eq!(th.allowance(10, t0 + ms(55)), Err(ms(5)));
    assert_eq!(th.allowance(10, t0 + ms(60)), Ok(10));
    // Never more than one second's worth, however long it was idle.
    assert_eq!(
        th.allowance(1 << 20, t0 + Duration::from_secs(10)),
        Ok(1000)
    );
}

#[test]
fn throttle_short_reads_keep_the_rest() {
    let t0 = Instant::now();
    let mut th = ReadThrottle::new(1000, t0);
    let n = th.allowance(800, t0).unwrap();
    assert_eq!(n, 800);
    th.consume(300); // the read returned less than allowed
    assert_eq!(th.allowance(4096, t0), Ok(700));
}

#[test]
fn throttle_limits_the_total_over_time() {
    // Read as fast as allowed for 10 simulated seconds: the total is the
    // initial second's burst plus the rate times the time.
    let t0 = Instant::now();
    let mut th = ReadThrottle::new(5000, t0);
    let mut now = t0;
    let mut total = 0usize;
    for _ in 0..100_000 {
        if now >= t0 + Duration::from_secs(10) {
            break;
        }
        match th.allowance(1500, now) {
            Ok(n) => {
                assert!(n > 0);
                th.consume(n);
                total += n;
            }
            Err(wait) => {
                assert!(wait > Duration::ZERO);
                now += wait;
            }
        }
    }
    assert!(total <= 5000 + 10 * 5000, "read {total}");
    assert!(total >= 10 * 5000, "read {total}");
}

#[test]
fn throttle_tiny_rates_still_progress() {
    let t0 = Instant::now();
    let mut th = ReadThrottle::new(1, t0);
    assert_eq!(th.allowance(100, t0), Ok(1));
    th.consume(1);
    assert_eq!(th.allowance(100, t0), Err(Duration::from_secs(1)));
    assert_eq!(th.allowance(100, t0 + Duration::from_secs(1)), Ok(1));
    // A rate of 0 is treated as 1 (the caller makes none when off).
    let mut th = ReadThrottle::new(0, t0);
    assert_eq!(th.allowance(100, t0), Ok(1));
}
