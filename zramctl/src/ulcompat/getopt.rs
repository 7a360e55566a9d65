//! GNU `getopt_long()` as util-linux's zramctl calls it (optstring
//! `a:bfho:nrs:t:V`, argument permutation, `--` ends options, unique
//! prefixes of long options), with glibc's error texts, so that scripts see
//! the same parse and the same diagnostics.

/// One long option: name, whether it takes an argument, and its id.
#[derive(Debug, Clone, Copy)]
pub struct LongOpt {
    pub name: &'static str,
    pub has_arg: bool,
    pub id: char,
}

/// What went wrong, already worded as glibc prints it (after `argv[0]: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetoptError(pub String);

/// A getopt_long scanner over `args` (without argv[0]).
pub struct Getopt<'a> {
    args: Vec<String>,
    short: &'a str,
    long: &'a [LongOpt],
    idx: usize,
    /// Position inside a bundle of short options (`-bn`).
    sub: usize,
    operands: Vec<String>,
    done: bool,
}

impl<'a> Getopt<'a> {
    pub fn new(args: Vec<String>, short: &'a str, long: &'a [LongOpt]) -> Self {
        Self {
            args,
            short,
            long,
            idx: 0,
            sub: 0,
            operands: Vec::new(),
            done: false,
        }
    }

    /// The non-option arguments, in order (call after the last option).
    pub fn operands(mut self) -> Vec<String> {
        while self.idx < self.args.len() {
            self.operands.push(self.args[self.idx].clone());
            self.idx += 1;
        }
        self.operands
    }

    fn short_takes_arg(&self, c: char) -> Option<bool> {
        let pos = self.short.find(c)?;
        if c == ':' {
            return None;
        }
        Some(self.short[pos + c.len_utf8()..].starts_with(':'))
    }

    /// The next option and its argument; `None` when options are exhausted.
    pub fn next_opt(&mut self) -> Option<Result<(char, Option<String>), GetoptError>> {
        if self.done {
            return None;
        }
        if self.sub == 0 {
            // Permute: operands are set aside until the options end.
            loop {
                let arg = self.args.get(self.idx)?;
                if arg == "--" {
                    self.idx += 1;
                    self.done = true;
                    return None;
                }
                if arg.len() > 1 && arg.starts_with('-') {
                    break;
                }
                self.operands.push(arg.clone());
                self.idx += 1;
            }
            let arg = self.args[self.idx].clone();
            if let Some(body) = arg.strip_prefix("--") {
                self.idx += 1;
                return Some(self.long_opt(body));
            }
            self.sub = 1;
        }
        let arg = self.args[self.idx].clone();
        let c = arg[self.sub..].chars().next().expect("inside a bundle");
        self.sub += c.len_utf8();
        let at_end = self.sub >= arg.len();
        if at_end {
            self.sub = 0;
            self.idx += 1;
        }
        match self.short_takes_arg(c) {
            None => Some(Err(GetoptError(format!("invalid option -- '{c}'")))),
            Some(false) => Some(Ok((c, None))),
            Some(true) => {
                if !at_end {
                    let value = arg[self.sub..].to_owned();
                    self.sub = 0;
                    self.idx += 1;
                    return Some(Ok((c, Some(value))));
                }
                match self.args.get(self.idx) {
                    Some(v) => {
                        let v = v.clone();
                        self.idx += 1;
                        Some(Ok((c, Some(v))))
                    }
                    None => Some(Err(GetoptError(format!(
                        "option requires an argument -- '{c}'"
                    )))),
                }
            }
        }
    }

    fn long_opt(&mut self, body: &str) -> Result<(char, Option<String>), GetoptError> {
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let exact = self.long.iter().find(|o| o.name == name);
        let opt = match exact {
            Some(o) => *o,
            None => {
                let cands: Vec<&LongOpt> = self
                    .long
                    .iter()
                    .filter(|o| o.name.starts_with(name))
                    .collect();
                match cands.as_slice() {
                    [] => {
                        return Err(GetoptError(format!("unrecognized option '--{body}'")));
                    }
                    [o] => **o,
                    many => {
                        let list: String =
                            many.iter().map(|o| format!(" '--{}'", o.name)).collect();
                        return Err(GetoptError(format!(
                            "option '--{body}' is ambiguous; possibilities:{list}"
                        )));
                    }
                }
            }
        };
        match (opt.has_arg, value) {
            (false, Some(_)) => Err(GetoptError(format!(
                "option '--{}' doesn't allow an argument",
                opt.name
            ))),
            (false, None) => Ok((opt.id, None)),
            (true, Some(v)) => Ok((opt.id, Some(v))),
            (true, None) => match self.args.get(self.idx) {
                Some(v) => {
                    let v = v.clone();
                    self.idx += 1;
                    Ok((opt.id, Some(v)))
                }
                None => Err(GetoptError(format!(
                    "option '--{}' requires an argument",
                    opt.name
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &[LongOpt] = &[
        LongOpt {
            name: "output",
            has_arg: true,
            id: 'o',
        },
        LongOpt {
            name: "output-all",
            has_arg: false,
            id: 'A',
        },
        LongOpt {
            name: "size",
            has_arg: true,
            id: 's',
        },
        LongOpt {
            name: "bytes",
            has_arg: false,
            id: 'b',
        },
    ];

    type Parsed = Vec<Result<(char, Option<String>), GetoptError>>;

    fn run(args: &[&str]) -> (Parsed, Vec<String>) {
        let mut g = Getopt::new(args.iter().map(|s| s.to_string()).collect(), "bo:s:", LONG);
        let mut out = Vec::new();
        while let Some(r) = g.next_opt() {
            out.push(r);
        }
        (out, g.operands())
    }

    #[test]
    fn permutes_bundles_and_prefixes() {
        let (o, ops) = run(&["/dev/zram1", "-bs64M", "--si=2M", "x", "--", "-b"]);
        assert_eq!(
            o,
            vec![
                Ok(('b', None)),
                Ok(('s', Some("64M".into()))),
                Ok(('s', Some("2M".into())))
            ]
        );
        assert_eq!(ops, ["/dev/zram1", "x", "-b"]);
    }

    #[test]
    fn glibc_errors() {
        let e = |a: &[&str]| run(a).0.into_iter().find_map(|r| r.err()).unwrap().0;
        assert_eq!(e(&["-x"]), "invalid option -- 'x'");
        assert_eq!(e(&["-s"]), "option requires an argument -- 's'");
        assert_eq!(e(&["--size"]), "option '--size' requires an argument");
        assert_eq!(
            e(&["--bytes=1"]),
            "option '--bytes' doesn't allow an argument"
        );
        assert_eq!(e(&["--nope=1"]), "unrecognized option '--nope=1'");
        assert_eq!(
            e(&["--outp"]),
            "option '--outp' is ambiguous; possibilities: '--output' '--output-all'"
        );
    }
}
