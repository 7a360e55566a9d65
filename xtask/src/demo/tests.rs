use super::{
    observe::{idle_slots, metric},
    workload::{PAGE, Pools},
};

#[test]
fn pages_are_deterministic_and_mixed() {
    let pools = Pools::new();
    let (mut a, mut b) = (vec![0u8; PAGE], vec![0u8; PAGE]);
    pools.fill_page(10, &mut a);
    pools.fill_page(10, &mut b);
    assert_eq!(a, b);
    pools.fill_page(8, &mut a);
    assert!(a.iter().all(|&x| x == 0), "one in 8 is zero");
    pools.fill_page(11, &mut b);
    assert!(b.starts_with(b"page 0000000011\n"));
}

#[test]
fn idle_slots_from_cumulative_ages() {
    let page = "zramctl_slot_age_slots{device=\"rzram0\",age_ge_seconds=\"2\",age_lt_seconds=\"4\"} 10\n\
                zramctl_slot_age_slots{device=\"rzram0\",age_ge_seconds=\"4\",age_lt_seconds=\"8\"} 20\n\
                zramctl_slot_age_slots{device=\"rzram0\",age_ge_seconds=\"8\",age_lt_seconds=\"16\"} 60\n\
                zramctl_slot_age_slots{device=\"rzram0\",age_ge_seconds=\"16\",age_lt_seconds=\"+Inf\"} 10\n";
    assert_eq!(idle_slots(page, 8.0), Some((70.0, 100.0)));
    assert_eq!(
        metric(page, "zramctl_slot_age_slots", &[("age_lt_seconds", "8")]),
        Some(20.0)
    );
}
