use super::*;

fn parse(s: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/zramctl/zramctl.toml"), s)
}

#[test]
fn defaults_and_overrides() {
    let c = parse(
        "[policy]\nbudget_per_day = \"512M\"\n\n[[device]]\nname = \"zram0\"\n\n[[device]]\nname = \"/dev/zram1\"\nbudget_per_day = 4096\nbatch_max = 64\n",
    )
    .unwrap();
    assert_eq!(c.interval_secs, 10.0);
    assert_eq!(c.metrics_listen, Some("127.0.0.1:9466".parse().unwrap()));
    assert_eq!(c.devices[0].name, "zram0");
    assert_eq!(c.devices[0].policy.budget_bytes_per_day, 512 << 20);
    assert_eq!(c.devices[1].name, "zram1");
    assert_eq!(c.devices[1].policy.budget_bytes_per_day, 4096);
    assert_eq!(c.devices[1].policy.batch.max, 64);
    assert_eq!(c.devices[0].policy.batch.max, 256);
}

#[test]
fn errors_name_line_and_field() {
    let cases = [
        (
            "[daemon]\ninterval_secs = \"x\"\n[[device]]\nname=\"zram0\"\n",
            "zramctl.toml:2: daemon.interval_secs: ",
        ),
        (
            "[daemon]\n\ninterval_secs = 0\n[[device]]\nname=\"zram0\"\n",
            "zramctl.toml:3: daemon.interval_secs: 0 is out of range",
        ),
        (
            "[policy]\nbogus = 1\n[[device]]\nname=\"zram0\"\n",
            "zramctl.toml:2: policy.bogus: unknown field `bogus`",
        ),
        (
            "[policy]\nbatch_min = 10\nbatch_max = 5\n[[device]]\nname=\"zram0\"\n",
            "zramctl.toml:2: policy.batch_min: batch_min 10 is larger than batch_max 5",
        ),
        (
            "[policy]\nbudget_per_day = \"lots\"\n[[device]]\nname=\"zram0\"\n",
            "zramctl.toml:2: policy.budget_per_day: \"lots\" is not a size",
        ),
        (
            "[daemon]\nmetrics_listen = \"0.0.0.0:9466\"\n[[device]]\nname=\"zram0\"\n",
            "zramctl.toml:2: daemon.metrics_listen: 0.0.0.0:9466 is not a loopback",
        ),
        (
            "[[device]]\nname=\"zram0\"\n[[device]]\nname=\"sda\"\n",
            "zramctl.toml:4: device[1].name: invalid device \"sda\"",
        ),
        (
            "[[device]]\nname=\"zram0\"\n[[device]]\nname=\"/dev/zram0\"\n",
            "zramctl.toml:4: device[1].name: zram0 is listed twice",
        ),
        (
            "[[device]]\nname=\"zram0\"\nutilisation = 1.5\n",
            "zramctl.toml:3: device[0].utilisation: 1.5 is out of range",
        ),
        ("[daemon\n", "zramctl.toml:1: "),
    ];
    for (src, want) in cases {
        let e = parse(src).unwrap_err().to_string();
        assert!(e.contains(want), "{src:?}\n got: {e}\nwant: {want}");
    }
    let e = parse("[daemon]\n").unwrap_err().to_string();
    assert!(e.contains("no [[device]] section"), "{e}");
    assert!(
        parse("[daemon]\nmetrics_listen = \"off\"\n[[device]]\nname=\"zram0\"\n")
            .unwrap()
            .metrics_listen
            .is_none()
    );
}

#[test]
fn recompress_and_backing_sections() {
    let c = parse(
        "[policy]\nrecompress_idle_age_secs = 600\n\n[[device]]\nname = \"zram0\"\ndisksize = \"1G\"\nrecomp_algorithm = [\"zstd\"]\nrecompress_threshold = 1000\n\n[device.backing]\nfile = \"/var/lib/zramctl/zram0.img\"\nsize = \"256M\"\nencrypt = true\n\n[[device]]\nname = \"zram1\"\n",
    )
    .unwrap();
    let r = c.devices[0].recompress.as_ref().unwrap();
    assert_eq!(
        (r.idle_age_secs, r.algorithm.as_str(), r.threshold),
        (600, "zstd", 1000)
    );
    let s = c.devices[0].setup.as_ref().unwrap();
    assert_eq!(s.disksize(), 1 << 30);
    assert_eq!(s.recomp_algorithms(), ["zstd"]);
    let Some(crate::ops::setup::Backing::File(b)) = s.backing() else {
        panic!("no backing file: {s:?}")
    };
    assert_eq!(b.size, crate::provision::BackingSize::Bytes(256 << 20));
    assert!(b.encrypt);
    assert_eq!(c.devices[1].recompress.as_ref().unwrap().threshold, 0);
    assert!(c.devices[1].setup.is_none());
    let cases = [
        (
            "[[device]]\nname=\"zram0\"\n[device.backing]\nfile = \"/f\"\n",
            "zramctl.toml:3: device[0].backing: [device.backing] sets the device up at start, which needs disksize",
        ),
        (
            "[[device]]\nname=\"zram0\"\ndisksize=\"1G\"\n[device.backing]\nfile = \"rel/f\"\n",
            "zramctl.toml:5: device[0].backing.file: \"rel/f\" is not an absolute path",
        ),
        (
            "[[device]]\nname=\"zram0\"\ndisksize=\"1G\"\n[device.backing]\nfile = \"/f\"\nsize = \"1K\"\n",
            "zramctl.toml:6: device[0].backing.size: backing file size 1K is too small",
        ),
        (
            "[[device]]\nname=\"zram0\"\ndisksize=\"1G\"\n[device.backing]\nfile = \"/f\"\nencrypted = true\n",
            "zramctl.toml:6: device.backing.encrypted: unknown field `encrypted`",
        ),
        (
            "[[device]]\nname=\"zram0\"\nrecompress_algorithm = \"zstd\"\n",
            "zramctl.toml:3: device[0].recompress_algorithm: has no effect without recompress_idle_age_secs",
        ),
        (
            "[[device]]\nname=\"zram0\"\nrecompress_idle_age_secs = 60\nrecompress_threshold = 4096\n",
            "zramctl.toml:4: device[0].recompress_threshold: 4096 is out of range",
        ),
        (
            "[[device]]\nname=\"zram0\"\ndisksize = 0\n",
            "zramctl.toml:3: device[0].disksize: must be larger than 0",
        ),
    ];
    for (src, want) in cases {
        let e = parse(src).unwrap_err().to_string();
        assert!(e.contains(want), "{src:?}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn the_shipped_config_is_valid() {
    let src = include_str!("../../../../packaging/zramctl.toml");
    let c = parse(src).unwrap();
    assert_eq!(c.devices[0].name, "zram0");
    assert_eq!(c.devices[0].policy.budget_bytes_per_day, 1 << 30);
}
