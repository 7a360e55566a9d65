//! The end: rzram unloads cleanly.

use crate::common::*;

// ---------------------------------------------------------------------------
// The end: rzram unloads cleanly, and loads again for whoever comes next.

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
pub fn rzram_unloads_cleanly() {
    in_vm();
    load_rzram();
    for d in ["rzram0", "rzram1"] {
        reset(d);
        let mm = fields(d, "mm_stat");
        assert_eq!(mm[2], 0, "{d}: mem_used_total after reset: {mm:?}");
        assert_eq!(fields(d, "bd_stat"), [0, 0, 0], "{d}");
    }
    sh("rmmod rzram");
    assert!(!Path::new("/sys/block/rzram0").exists());
    assert!(!Path::new("/sys/class/rzram-control").exists());
    load_rzram();
}
