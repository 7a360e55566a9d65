//! The table util-linux's zramctl prints through libsmartcols, for output
//! that is not a terminal (scripts, pipes): each column as wide as its
//! widest cell or header, right-aligned columns padded on the left, the
//! last column not padded, nothing at all for no rows; `--raw` separates
//! cells by one space and escapes blanks and `\` as `\xNN`.

/// One column: header and alignment.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub name: &'static str,
    pub right: bool,
    /// libsmartcols' width hint: a column whose widest cell is at least as
    /// wide as its header is widened to a hint >= 1 (DATA with `4096`).
    pub whint: f64,
}

/// Renders `rows` (one `Option<String>` cell per column; `None` is empty).
pub fn render(cols: &[Col], rows: &[Vec<Option<String>>], raw: bool, headings: bool) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let header: Vec<Option<String>> = cols.iter().map(|c| Some(c.name.to_owned())).collect();
    if raw {
        let line = |out: &mut String, cells: &[Option<String>]| {
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&escape_raw(cell.as_deref().unwrap_or("")));
            }
            out.push('\n');
        };
        if headings {
            line(&mut out, &header);
        }
        for r in rows {
            line(&mut out, r);
        }
        return out;
    }
    let rows_safe: Vec<Vec<Option<String>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| c.as_deref().map(escape_safe)).collect())
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let data = rows_safe
                .iter()
                .filter_map(|r| r[i].as_ref().map(|s| s.chars().count()))
                .max()
                .unwrap_or(0);
            let header = c.name.len();
            if data < header {
                header
            } else if c.whint >= 1.0 && (data as f64) < c.whint && (header as f64) < c.whint {
                c.whint as usize
            } else {
                data
            }
        })
        .collect();
    let last = cols.len() - 1;
    let line = |out: &mut String, cells: &[Option<String>]| {
        for (i, (col, cell)) in cols.iter().zip(cells).enumerate() {
            let w = widths[i];
            let data = cell.as_deref().filter(|s| !s.is_empty());
            let len = data.map_or(0, |s| s.chars().count());
            match data {
                Some(s) if col.right => {
                    out.extend(std::iter::repeat_n(' ', w.saturating_sub(len)));
                    out.push_str(s);
                }
                Some(s) => {
                    out.push_str(s);
                    if i != last {
                        out.extend(std::iter::repeat_n(' ', w.saturating_sub(len)));
                    }
                }
                None if i != last => out.extend(std::iter::repeat_n(' ', w)),
                None => {}
            }
            if i != last {
                out.push(' ');
            }
        }
        out.push('\n');
    };
    if headings {
        line(&mut out, &header);
    }
    for r in &rows_safe {
        line(&mut out, r);
    }
    out
}

fn escape_raw(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b == b' ' || b == b'\t' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\x{b:02x}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// libsmartcols' "safe" encoding: control characters as `\xNN`.
fn escape_safe(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_libsmartcols() {
        let cols = [
            Col {
                name: "NAME",
                right: false,
                whint: 0.25,
            },
            Col {
                name: "DISKSIZE",
                right: true,
                whint: 5.0,
            },
            Col {
                name: "STREAMS",
                right: true,
                whint: 3.0,
            },
            Col {
                name: "MOUNTPOINT",
                right: false,
                whint: 0.1,
            },
        ];
        let rows = vec![vec![
            Some("/dev/zram1".into()),
            Some("64M".into()),
            None,
            None,
        ]];
        assert_eq!(
            render(&cols, &rows, false, true),
            "NAME       DISKSIZE STREAMS MOUNTPOINT\n/dev/zram1      64M         \n"
        );
        assert_eq!(render(&cols, &rows, true, false), "/dev/zram1 64M  \n");
        assert_eq!(render(&cols, &[], false, true), "");
        // DATA's hint is 5: `4096` (as wide as the header) widens it.
        let data = [Col {
            name: "DATA",
            right: true,
            whint: 5.0,
        }];
        let rows = vec![vec![Some("4096".into())]];
        assert_eq!(render(&data, &rows, false, true), " DATA\n 4096\n");
        let rows = vec![vec![Some("0B".into())]];
        assert_eq!(render(&data, &rows, false, true), "DATA\n  0B\n");
    }
}
