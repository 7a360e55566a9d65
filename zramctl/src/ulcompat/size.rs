//! util-linux's size syntax: `strtosize()` to parse (`K`/`M`/`G`... and
//! `KiB`... binary, `KB`/`MB`/`GB`... decimal, C number bases, fractions)
//! and `size_to_human_string(SIZE_SUFFIX_1LETTER)` to print (`4K`, `1.5G`).
//! Both follow util-linux 2.38 to the byte, quirks included, because
//! scripts hand zramctl the sizes they gave util-linux's.

/// `strtoumax(s, &end, 0)`: C number bases (`0x` hex, leading `0` octal).
/// Returns the value, the index where parsing stopped (0 when nothing was
/// parsed) and whether it overflowed (`ERANGE`, value `u64::MAX`).
fn strtoumax0(s: &[u8]) -> (u64, usize, bool) {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut base = 10u64;
    if i < s.len() && s[i] == b'0' {
        if matches!(s.get(i + 1), Some(b'x' | b'X'))
            && s.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit())
        {
            base = 16;
            i += 2;
        } else {
            base = 8;
        }
    }
    let start = i;
    let (mut v, mut over) = (0u64, false);
    while let Some(d) = s.get(i).and_then(|&c| (c as char).to_digit(base as u32)) {
        match v
            .checked_mul(base)
            .and_then(|x| x.checked_add(u64::from(d)))
        {
            Some(x) if !over => v = x,
            _ => over = true,
        }
        i += 1;
    }
    if i == start {
        return (0, 0, false);
    }
    if over {
        return (u64::MAX, i, true);
    }
    (if neg { v.wrapping_neg() } else { v }, i, false)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn scale(x: &mut u64, base: u64, power: u32) -> Result<(), i32> {
    for _ in 0..power {
        *x = x.checked_mul(base).ok_or(libc::ERANGE)?;
    }
    Ok(())
}

/// Parses a size as util-linux's `strtosize()`; the error is an errno
/// (`EINVAL`, `ERANGE`), as util-linux reports it.
pub fn parse_size(input: &str) -> Result<u64, i32> {
    let s = input.as_bytes();
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    if s.is_empty() {
        return Err(libc::EINVAL);
    }
    let mut p = 0;
    while p < s.len() && is_space(s[p]) {
        p += 1;
    }
    if at(p) == b'-' {
        return Err(libc::EINVAL);
    }
    let (mut x, end, over) = strtoumax0(s);
    if end == 0 || (over && (x == u64::MAX || x == 0)) {
        return Err(if over { libc::ERANGE } else { libc::EINVAL });
    }
    if end >= s.len() {
        return Ok(x);
    }
    let mut p = end;
    let (mut frac, mut frac_zeros, mut base) = (0u64, 0u32, 1024u64);
    loop {
        if at(p + 1) == b'i' && matches!(at(p + 2), b'B' | b'b') && at(p + 3) == 0 {
            base = 1024;
        } else if matches!(at(p + 1), b'B' | b'b') && at(p + 2) == 0 {
            base = 1000;
        } else if at(p + 1) != 0 {
            if frac == 0 && at(p) == b'.' {
                let mut f = p + 1;
                while at(f) == b'0' {
                    frac_zeros += 1;
                    f += 1;
                }
                let fend;
                if at(f).is_ascii_digit() {
                    let (v, e, o) = strtoumax0(&s[f..]);
                    if e == 0 || (o && (v == u64::MAX || v == 0)) {
                        return Err(if o { libc::ERANGE } else { libc::EINVAL });
                    }
                    frac = v;
                    fend = f + e;
                } else {
                    fend = f;
                }
                if frac != 0 && at(fend) == 0 {
                    return Err(libc::EINVAL);
                }
                p = fend;
                continue;
            }
            return Err(libc::EINVAL);
        }
        break;
    }
    let pwr = match b"KMGTPEZY".iter().position(|&c| c == at(p)) {
        Some(i) => i as u32 + 1,
        None => match b"kmgtpezy".iter().position(|&c| c == at(p)) {
            Some(i) => i as u32 + 1,
            // strchr() finds the terminator too: a suffix-less "1.0" ends
            // up here with pwr 9 in util-linux.
            None if at(p) == 0 => 9,
            None => return Err(libc::EINVAL),
        },
    };
    let rc = scale(&mut x, base, pwr);
    if frac != 0 {
        let mut frac_base = 1u64;
        // util-linux ignores overflow here as well.
        let _ = scale(&mut frac_base, base, pwr);
        let (mut frac_div, mut frac_poz) = (10u64, 1u64);
        while frac_div < frac {
            if frac_div <= u64::MAX / 10 {
                frac_div *= 10;
            } else {
                frac /= 10;
            }
        }
        for _ in 0..frac_zeros {
            if frac_div <= u64::MAX / 10 {
                frac_div *= 10;
            } else {
                frac /= 10;
            }
        }
        loop {
            let seg = frac % 10;
            let seg_div = frac_div / frac_poz;
            frac /= 10;
            frac_poz = frac_poz.wrapping_mul(10);
            if seg != 0 && seg_div / seg != 0 {
                x = x.wrapping_add(frac_base / (seg_div / seg));
            }
            if frac == 0 {
                break;
            }
        }
    }
    rc.map(|()| x)
}

/// util-linux's `size_to_human_string(SIZE_SUFFIX_1LETTER, bytes)`.
pub fn human(bytes: u64) -> String {
    let mut shift = 10;
    while shift <= 60 {
        if bytes < (1u64 << shift) {
            break;
        }
        shift += 10;
    }
    let exp = shift - 10;
    let letter = b"BKMGTPE"[(exp / 10) as usize] as char;
    let (mut dec, mut frac) = if exp == 0 {
        (bytes, 0)
    } else {
        (bytes >> exp, bytes & ((1u64 << exp) - 1))
    };
    if frac != 0 {
        frac = if frac >= u64::MAX / 1000 {
            ((frac / 1024) * 1000) / (1u64 << (exp - 10))
        } else {
            (frac * 1000) / (1u64 << exp)
        };
        frac = (frac + 50) / 100 * 10;
        if frac == 100 {
            dec += 1;
            frac = 0;
        }
    }
    if frac != 0 {
        let mut s = format!("{dec}.{frac:02}");
        if s.ends_with('0') {
            s.pop();
        }
        format!("{s}{letter}")
    } else {
        format!("{dec}{letter}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_util_linux_parses_them() {
        let ok = |s: &str, v: u64| assert_eq!(parse_size(s), Ok(v), "{s}");
        ok("4096", 4096);
        ok("64M", 64 << 20);
        ok("64m", 64 << 20);
        ok("64MiB", 64 << 20);
        ok("64MB", 64_000_000);
        ok("4G", 4 << 30);
        ok("4GB", 4_000_000_000);
        ok("1.5G", 3 << 29);
        ok("0.5K", 512);
        ok("1.05M", (1 << 20) + (1 << 20) / 20);
        ok("0x10K", 16 << 10);
        ok("010K", 8 << 10);
        ok(" 8M", 8 << 20);
        ok("+8M", 8 << 20);
        let bad = |s: &str, e: i32| assert_eq!(parse_size(s), Err(e), "{s}");
        bad("", libc::EINVAL);
        bad("-1", libc::EINVAL);
        bad("M", libc::EINVAL);
        bad("64 M", libc::EINVAL);
        bad("64X", libc::EINVAL);
        bad("64B", libc::EINVAL);
        bad("1.5", libc::EINVAL);
        bad("64MiBx", libc::EINVAL);
        bad("99999999999999999999", libc::ERANGE);
        bad("16E", libc::ERANGE);
        bad("1Z", libc::ERANGE);
    }

    #[test]
    fn human_as_util_linux_prints_it() {
        for (b, s) in [
            (0, "0B"),
            (1023, "1023B"),
            (1024, "1K"),
            (4710, "4.6K"),
            (64 << 20, "64M"),
            (3 << 29, "1.5G"),
            ((1 << 20) - 1, "1024K"),
            ((10 << 20) + (1 << 19), "10.5M"),
            (u64::MAX, "16E"),
        ] {
            assert_eq!(human(b), s, "{b}");
        }
    }
}
