//! A minimal reader of the kernel's BTF (/sys/kernel/btf/vmlinux): enough to find the byte offset
//! of a struct member, looking through anonymous structs and unions. The kernel programs have no
//! CO-RE relocations (aya-ebpf does not emit them), so the daemon finds offsets here and passes
//! them in as load-time globals.
use std::{collections::HashMap, fs, path::Path};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BtfError {
    /// The file could not be read.
    #[error("cannot read BTF from {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not BTF, or are cut short.
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
}

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

struct Member {
    name: u32,
    type_id: u32,
    bit_offset: u32,
}

struct Type {
    name: u32,
    kind: u32,
    /// For modifiers and typedefs: the type they refer to.
    type_id: u32,
    members: Vec<Member>,
}

pub struct Btf {
    types: Vec<Type>, // index = type id - 1
    strings: Vec<u8>,
    structs_by_name: HashMap<String, u32>,
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let bytes = fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes)
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, BtfError> {
        let u16_at = |o: usize| {
            bytes
                .get(o..o + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
        };
        let u32_at = |o: usize| {
            bytes
                .get(o..o + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        if u16_at(0) != Some(BTF_MAGIC) {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let short = BtfError::Malformed("truncated header");
        let hdr_len = u32_at(4).ok_or(short)? as usize;
        let field = |o| {
            u32_at(o)
                .map(|v| v as usize)
                .ok_or(BtfError::Malformed("truncated header"))
        };
        let (type_off, type_len, str_off, str_len) =
            (field(8)?, field(12)?, field(16)?, field(20)?);
        let types_start = hdr_len + type_off;
        let strings_start = hdr_len + str_off;
        let strings = bytes
            .get(strings_start..strings_start + str_len)
            .ok_or(BtfError::Malformed("string section out of bounds"))?
            .to_vec();

        let mut types = Vec::new();
        let mut at = types_start;
        let end = types_start + type_len;
        let cut = BtfError::Malformed("type section cut short");
        while at < end {
            let name = u32_at(at).ok_or(BtfError::Malformed("type section cut short"))?;
            let info = u32_at(at + 4).ok_or(BtfError::Malformed("type section cut short"))?;
            let size_or_type =
                u32_at(at + 8).ok_or(BtfError::Malformed("type section cut short"))?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            at += 12;
            let mut members = Vec::new();
            // Bytes that follow the common header, by kind (see the kernel's btf.rst).
            let extra = match kind {
                1 | 14 | 17 => 4,              // INT, VAR, DECL_TAG
                3 => 12,                       // ARRAY
                4 | 5 => 12 * vlen,            // STRUCT, UNION
                6 | 13 => 8 * vlen,            // ENUM, FUNC_PROTO
                15 | 19 => 12 * vlen,          // DATASEC, ENUM64
                0 | 2 | 7..=12 | 16 | 18 => 0, // the rest
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            if kind == KIND_STRUCT || kind == KIND_UNION {
                for i in 0..vlen {
                    let m = at + 12 * i;
                    let offset = u32_at(m + 8).ok_or(BtfError::Malformed("member cut short"))?;
                    members.push(Member {
                        name: u32_at(m).ok_or(BtfError::Malformed("member cut short"))?,
                        type_id: u32_at(m + 4).ok_or(BtfError::Malformed("member cut short"))?,
                        // With kind_flag set, the top 8 bits are a bitfield size.
                        bit_offset: if kind_flag {
                            offset & 0xff_ffff
                        } else {
                            offset
                        },
                    });
                }
            }
            at += extra;
            if at > bytes.len() {
                return Err(cut);
            }
            types.push(Type {
                name,
                kind,
                type_id: size_or_type,
                members,
            });
        }

        let mut btf = Self {
            types,
            strings,
            structs_by_name: HashMap::new(),
        };
        for (i, t) in btf.types.iter().enumerate() {
            if t.kind == KIND_STRUCT && t.name != 0 && !t.members.is_empty() {
                let name = btf.name(t.name).to_owned();
                btf.structs_by_name.entry(name).or_insert(i as u32 + 1);
            }
        }
        Ok(btf)
    }

    fn name(&self, offset: u32) -> &str {
        let rest = self.strings.get(offset as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    fn get(&self, id: u32) -> Option<&Type> {
        id.checked_sub(1).and_then(|i| self.types.get(i as usize))
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.type_id
                }
                _ => return Some(t),
            }
        }
        None
    }

    /// Byte offset of `member` in `struct name`, searching anonymous members too.
    pub fn member_offset(&self, name: &str, member: &str) -> Option<u32> {
        let id = *self.structs_by_name.get(name)?;
        self.find_member(self.get(id)?, member, 0)
            .map(|bits| bits / 8)
    }

    fn find_member(&self, t: &Type, member: &str, base_bits: u32) -> Option<u32> {
        for m in &t.members {
            if m.name != 0 && self.name(m.name) == member {
                return Some(base_bits + m.bit_offset);
            }
        }
        for m in t.members.iter().filter(|m| m.name == 0) {
            if let Some(inner) = self.resolve(m.type_id)
                && (inner.kind == KIND_STRUCT || inner.kind == KIND_UNION)
                && let Some(found) = self.find_member(inner, member, base_bits + m.bit_offset)
            {
                return Some(found);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running kernel's BTF, readable without privileges: the parser must find the members
    /// keytrail needs, including ones inside anonymous structs (mm_struct's arg_start).
    #[test]
    fn finds_members_in_the_running_kernel() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("SKIPPED: no /sys/kernel/btf/vmlinux on this machine");
            return;
        }
        let btf = Btf::from_file(path).unwrap();
        let tgid = btf.member_offset("task_struct", "tgid").unwrap();
        let pid = btf.member_offset("task_struct", "pid").unwrap();
        assert_eq!(tgid, pid + 4, "tgid follows pid in task_struct");
        assert!(btf.member_offset("mm_struct", "arg_start").unwrap() > 0);
        assert!(
            btf.member_offset("mm_struct", "arg_end").unwrap()
                > btf.member_offset("mm_struct", "arg_start").unwrap()
        );
        assert_eq!(btf.member_offset("task_struct", "no_such_member"), None);
        assert_eq!(btf.member_offset("no_such_struct", "pid"), None);
    }

    #[test]
    fn rejects_what_is_not_btf() {
        assert!(matches!(
            Btf::parse(b"not btf at all"),
            Err(BtfError::Malformed(_))
        ));
        assert!(matches!(
            Btf::parse(&[0x9f, 0xeb, 1]),
            Err(BtfError::Malformed(_))
        ));
    }
}
