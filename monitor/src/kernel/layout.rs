//! The kernel facts the programs need at load time: struct member offsets (from BTF) and the
//! layout of the filemap tracepoint records (from tracefs).
use std::{fs, path::Path};

use monitor_common::KernelOffsets;

use super::btf::Btf;

/// Members the programs read, as (struct, member, setter). A member that is missing keeps
/// `UNKNOWN_OFFSET`: the programs then report that field as unknown instead of reading garbage.
type Setter = fn(&mut KernelOffsets, u32);
const MEMBERS: &[(&str, &str, Setter)] = &[
    ("task_struct", "pid", |o, v| o.task_pid = v),
    ("task_struct", "tgid", |o, v| o.task_tgid = v),
    ("task_struct", "real_parent", |o, v| o.task_real_parent = v),
    ("task_struct", "group_leader", |o, v| {
        o.task_group_leader = v
    }),
    ("task_struct", "start_boottime", |o, v| {
        o.task_start_boottime = v
    }),
    ("task_struct", "loginuid", |o, v| o.task_loginuid = v),
    ("task_struct", "sessionid", |o, v| o.task_sessionid = v),
    ("task_struct", "mm", |o, v| o.task_mm = v),
    ("task_struct", "files", |o, v| o.task_files = v),
    ("mm_struct", "arg_start", |o, v| o.mm_arg_start = v),
    ("mm_struct", "arg_end", |o, v| o.mm_arg_end = v),
    ("mm_struct", "env_start", |o, v| o.mm_env_start = v),
    ("mm_struct", "env_end", |o, v| o.mm_env_end = v),
    ("linux_binprm", "filename", |o, v| o.bprm_filename = v),
    ("linux_binprm", "file", |o, v| o.bprm_file = v),
    ("inode", "i_uid", |o, v| o.inode_uid = v),
    ("files_struct", "fdt", |o, v| o.files_fdt = v),
    ("fdtable", "fd", |o, v| o.fdt_fd = v),
    ("fdtable", "max_fds", |o, v| o.fdt_max_fds = v),
    ("file", "f_inode", |o, v| o.file_inode = v),
    ("inode", "i_ino", |o, v| o.inode_ino = v),
    ("inode", "i_sb", |o, v| o.inode_sb = v),
    ("super_block", "s_dev", |o, v| o.sb_dev = v),
    ("address_space", "host", |o, v| o.mapping_host = v),
    ("sock_common", "skc_cookie", |o, v| o.sock_cookie = v),
    ("sock_common", "skc_family", |o, v| o.sock_family = v),
    ("task_struct", "signal", |o, v| o.task_signal = v),
    ("signal_struct", "live", |o, v| o.signal_live = v),
    ("mm_struct", "exe_file", |o, v| o.mm_exe_file = v),
    ("task_struct", "ptrace", |o, v| o.task_ptrace = v),
    ("dentry", "d_inode", |o, v| o.dentry_inode = v),
];

/// Offsets from BTF, and the names of members that were not found (said in the log).
pub fn offsets_from_btf(btf: &Btf) -> (KernelOffsets, Vec<String>) {
    let mut offsets = KernelOffsets::UNKNOWN;
    let mut missing = Vec::new();
    for (structure, member, set) in MEMBERS {
        match btf.member_offset(structure, member) {
            Some(offset) => set(&mut offsets, offset),
            None => missing.push(format!("{structure}.{member}")),
        }
    }
    (offsets, missing)
}

/// Offsets of `i_ino` and `s_dev` in a tracepoint's record, from its tracefs format file.
pub fn tracepoint_field_offsets(tracefs: &Path, category: &str, name: &str) -> Option<(u32, u32)> {
    let format = fs::read_to_string(
        tracefs
            .join("events")
            .join(category)
            .join(name)
            .join("format"),
    );
    let format = format.ok()?;
    Some((
        field_offset(&format, "i_ino")?,
        field_offset(&format, "s_dev")?,
    ))
}

/// Finds `offset:N;` on the line declaring `field:<type> <name>;`.
fn field_offset(format: &str, name: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let decl = line.trim().strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        if decl.split_whitespace().last()? != name {
            return None;
        }
        rest.trim()
            .strip_prefix("offset:")?
            .split(';')
            .next()?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_field_offsets_from_a_format_file() {
        let format = "name: mm_filemap_get_pages\nformat:\n\
            \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
            \tfield:unsigned long i_ino;\toffset:8;\tsize:8;\tsigned:0;\n\
            \tfield:dev_t s_dev;\toffset:16;\tsize:4;\tsigned:0;\n";
        assert_eq!(field_offset(format, "i_ino"), Some(8));
        assert_eq!(field_offset(format, "s_dev"), Some(16));
        assert_eq!(field_offset(format, "index"), None);
    }
}
