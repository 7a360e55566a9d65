//! Why the probes could not be attached or read.

use super::btf::BtfError;

/// Why the probes could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("kernel BTF is needed for eBPF: {0}")]
    Btf(#[from] BtfError),
    #[error(
        "the kernel refused BPF ({what}): run as root (or with CAP_BPF and CAP_PERFMON); \
         kernel lockdown or kernel.unprivileged_bpf_disabled can also forbid it: {detail}"
    )]
    Refused { what: String, detail: String },
    #[error("eBPF {what} failed: {detail}")]
    Failed { what: String, detail: String },
    #[error("cannot watch {0}")]
    Invalid(String),
}

fn is_permission(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
        {
            return true;
        }
        cur = err.source();
    }
    false
}

pub(super) fn failed(what: &str, detail: impl std::fmt::Display) -> ProbeError {
    ProbeError::Failed {
        what: what.into(),
        detail: detail.to_string(),
    }
}

pub(super) fn classify(what: &str, e: impl std::error::Error + 'static) -> ProbeError {
    let detail = {
        let mut s = e.to_string();
        let mut src = e.source();
        while let Some(inner) = src {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            src = inner.source();
        }
        s
    };
    if is_permission(&e) {
        ProbeError::Refused {
            what: what.into(),
            detail,
        }
    } else {
        ProbeError::Failed {
            what: what.into(),
            detail,
        }
    }
}

/// Why an optional part of the probes is not in use (BPF run-time stats,
/// rzram's programs): not an error of the attach, a fact to show.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAttached(pub String);

impl From<&str> for NotAttached {
    fn from(s: &str) -> Self {
        NotAttached(s.to_owned())
    }
}

impl From<String> for NotAttached {
    fn from(s: String) -> Self {
        NotAttached(s)
    }
}
