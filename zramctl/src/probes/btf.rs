//! Just enough of a BTF reader to find struct field offsets in the running
//! kernel (`/sys/kernel/btf/vmlinux`).
//!
//! aya has no CO-RE relocations for Rust programs, so the eBPF side gets the
//! offsets it needs as globals that userspace fills in from here. Members
//! inside anonymous structs and unions are found too, as C would.

use std::path::Path;

/// Why an offset could not be found.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read kernel BTF {path}: {source} (the kernel needs CONFIG_DEBUG_INFO_BTF)")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    #[error("struct {0} is not in the kernel's BTF")]
    NoStruct(String),
    #[error("struct {strukt} has no member {member} in the kernel's BTF")]
    NoMember { strukt: String, member: String },
    #[error("member {0} is a bitfield; its byte offset is not usable")]
    Bitfield(String),
}

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    /// Offset in bits from the start of the enclosing struct.
    bit_offset: u32,
    bitfield: bool,
}

#[derive(Clone, Debug)]
struct Type {
    name_off: u32,
    kind: u32,
    /// Size for structs/unions, referenced type for modifiers.
    size_or_type: u32,
    members: Vec<Member>,
}

/// Parsed kernel BTF (types and strings only).
pub struct Btf {
    strings: Vec<u8>,
    /// Index 0 is `void`.
    types: Vec<Type>,
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Malformed("truncated"))
}

impl Btf {
    /// Reads `/sys/kernel/btf/vmlinux`.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        Self::from_file(Path::new("/sys/kernel/btf/vmlinux"))
    }

    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&data)
    }

    /// Parses little-endian BTF.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        if data.len() < 24 || data[0..2] != [0x9f, 0xeb] {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types_bytes = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or(BtfError::Malformed("type section out of bounds"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section out of bounds"))?
            .to_vec();
        let mut types = vec![Type {
            name_off: 0,
            kind: 0,
            size_or_type: 0,
            members: Vec::new(),
        }];
        let mut pos = 0;
        while pos < types_bytes.len() {
            let name_off = u32_at(types_bytes, pos)?;
            let info = u32_at(types_bytes, pos + 4)?;
            let size_or_type = u32_at(types_bytes, pos + 8)?;
            pos += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = pos + i * 12;
                        let off = u32_at(types_bytes, m + 8)?;
                        members.push(Member {
                            name_off: u32_at(types_bytes, m)?,
                            type_id: u32_at(types_bytes, m + 4)?,
                            bit_offset: if kind_flag { off & 0x00ff_ffff } else { off },
                            bitfield: kind_flag && (off >> 24) != 0,
                        });
                    }
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                0..=19 => 0,
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            pos += extra;
            types.push(Type {
                name_off,
                kind,
                size_or_type,
                members,
            });
        }
        Ok(Btf { strings, types })
    }

    fn name(&self, off: u32) -> &[u8] {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.size_or_type
                }
                _ => break,
            }
        }
        id
    }

    fn struct_id(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| {
                t.kind == KIND_STRUCT
                    && self.name(t.name_off) == name.as_bytes()
                    && !t.members.is_empty()
            })
            .map(|i| i as u32)
    }

    /// Bit offset of `member` within type `id`, searching anonymous members.
    fn find_member(&self, id: u32, member: &str, depth: u32) -> Option<(u32, u32, bool)> {
        let t = self.types.get(id as usize)?;
        for m in &t.members {
            let name = self.name(m.name_off);
            if name == member.as_bytes() {
                return Some((m.bit_offset, m.type_id, m.bitfield));
            }
            if name.is_empty() && depth < 8 {
                let inner = self.resolve(m.type_id);
                if let Some((off, ty, bf)) = self.find_member(inner, member, depth + 1) {
                    return Some((m.bit_offset + off, ty, bf));
                }
            }
        }
        None
    }

    /// Byte offset of `path` (`"bi_iter.bi_sector"`) in `struct strukt`.
    pub fn offset_of(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut id = self
            .struct_id(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        let mut bits = 0;
        for part in path.split('.') {
            let (off, ty, bitfield) =
                self.find_member(id, part, 0)
                    .ok_or_else(|| BtfError::NoMember {
                        strukt: strukt.to_owned(),
                        member: path.to_owned(),
                    })?;
            if bitfield || off % 8 != 0 {
                return Err(BtfError::Bitfield(format!("{strukt}.{path}")));
            }
            bits += off;
            id = self.resolve(ty);
        }
        Ok(bits / 8)
    }
}

/// Builds little-endian BTF in memory, for tests of BTF consumers.
#[cfg(test)]
pub(crate) struct BtfBuilder {
    strings: Vec<u8>,
    types: Vec<u8>,
    next_id: u32,
}

#[cfg(test)]
impl BtfBuilder {
    pub(crate) fn new() -> Self {
        BtfBuilder {
            strings: vec![0],
            types: Vec::new(),
            next_id: 1,
        }
    }

    fn string(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn push(&mut self, words: &[u32]) -> u32 {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
        self.next_id += 1;
        self.next_id - 1
    }

    /// An integer type of `size` bytes; returns its id.
    pub(crate) fn int(&mut self, name: &str, size: u32) -> u32 {
        let n = self.string(name);
        self.push(&[n, KIND_INT << 24, size, size * 8])
    }

    /// A pointer to `target`.
    pub(crate) fn ptr(&mut self, target: u32) -> u32 {
        const KIND_PTR: u32 = 2;
        self.push(&[0, KIND_PTR << 24, target])
    }

    /// A struct (or, with `union`, a union) with `(name, type, byte offset)`
    /// members; an empty name is an anonymous member.
    pub(crate) fn record(
        &mut self,
        name: &str,
        union: bool,
        size: u32,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let n = self.string(name);
        let kind = if union { KIND_UNION } else { KIND_STRUCT };
        let mut words = vec![n, (kind << 24) | members.len() as u32, size];
        for &(m, ty, off) in members {
            let m = self.string(m);
            words.extend([m, ty, off * 8]);
        }
        self.push(&words)
    }

    pub(crate) fn build(&self) -> Vec<u8> {
        let mut out = vec![0x9f, 0xeb, 1, 0];
        for v in [
            24u32,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds BTF for `struct inner { int a; int b; }` and
    /// `struct outer { long x; struct inner in; union { int u; }; }`.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0a\0b\0inner\0outer\0x\0in\0u\0long\0".to_vec();
        let s = |name: &str| {
            let pos = strings
                .windows(name.len() + 2)
                .position(|w| {
                    w[0] == 0 && &w[1..=name.len()] == name.as_bytes() && w[name.len() + 1] == 0
                })
                .unwrap();
            (pos + 1) as u32
        };
        let mut t = Vec::new();
        let mut ty = |name: u32, info: u32, size: u32, extra: &[u32]| {
            for v in [name, info, size].iter().chain(extra) {
                t.extend_from_slice(&v.to_le_bytes());
            }
        };
        ty(s("int"), KIND_INT << 24, 4, &[32]); // 1
        ty(s("long"), KIND_INT << 24, 8, &[64]); // 2
        ty(
            s("inner"),
            (KIND_STRUCT << 24) | 2,
            8,
            &[s("a"), 1, 0, s("b"), 1, 32],
        ); // 3
        ty(0, (KIND_UNION << 24) | 1, 4, &[s("u"), 1, 0]); // 4
        ty(0, KIND_TYPEDEF << 24, 3, &[]); // 5: typedef -> inner
        ty(
            s("outer"),
            (KIND_STRUCT << 24) | 3,
            20,
            &[s("x"), 2, 0, s("in"), 5, 64, 0, 4, 128],
        ); // 6
        let mut out = vec![0x9f, 0xeb, 1, 0];
        for v in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&t);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn finds_nested_and_anonymous_members() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.offset_of("outer", "x").unwrap(), 0);
        assert_eq!(btf.offset_of("outer", "in.b").unwrap(), 12);
        assert_eq!(btf.offset_of("outer", "u").unwrap(), 16);
        assert!(matches!(
            btf.offset_of("outer", "nope"),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            btf.offset_of("nope", "x"),
            Err(BtfError::NoStruct(_))
        ));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, no").is_err());
        let mut truncated = sample();
        truncated.truncate(40);
        assert!(Btf::parse(&truncated).is_err());
    }

    #[test]
    fn running_kernel_bio_offsets() {
        // Every kernel this project runs on has BTF; skip (with the reason) where not.
        let btf = match Btf::from_sys_fs() {
            Ok(b) => b,
            Err(e) => return eprintln!("skipped: {e}"),
        };
        let bdev = btf.offset_of("bio", "bi_bdev").unwrap();
        let sector = btf.offset_of("bio", "bi_iter.bi_sector").unwrap();
        let size = btf.offset_of("bio", "bi_iter.bi_size").unwrap();
        // bi_next and bi_bdev lead struct bio; bvec_iter starts with bi_sector then bi_size.
        assert_eq!(bdev, 8);
        assert_eq!(size, sector + 8);
        assert!(btf.offset_of("block_device", "bd_dev").is_ok());
    }
}
