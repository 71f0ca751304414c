//! `/proc/self/mountinfo`: what is mounted where.
//!
//! Each line is
//! `<id> <parent> <major:minor> <root> <mount point> <mount options> [<optional>...] - <fs type> <source> <super options>`
//! (see `proc_pid_mountinfo(5)`). The kernel escapes space, tab, newline and backslash in
//! paths as three-digit octal (`\040`, `\011`, `\012`, `\134`); [`unescape`] undoes that,
//! byte for byte, so non-UTF-8 paths survive.
//!
//! The file lists mounts bottom to top: when several mounts are stacked on one mount
//! point, the last entry is the one a lookup sees.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

/// The mount table of this process.
pub const PROC_SELF_MOUNTINFO: &str = "/proc/self/mountinfo";

/// One line of `mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount ID.
    pub mount_id: u64,
    /// The parent's mount ID.
    pub parent_id: u64,
    /// `major:minor` of the device (`0:52` for network and FUSE file systems).
    pub major_minor: String,
    /// The directory of the file system that is the root of this mount (`/` for a whole
    /// file system; the source directory for a bind mount).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw`, `ro`, `relatime`, ...).
    pub mount_options: Vec<String>,
    /// The file system type (`ceph`, `fuse.ceph-fuse`, `ext4`, ...).
    pub fs_type: String,
    /// The mount source (`10.0.0.1:6789,10.0.0.2:6789:/volumes/csi/x`, `ceph-fuse`,
    /// `/dev/sda1`, ...).
    pub source: String,
    /// Per-superblock options (`name=vol1,secret=<hidden>,...` for ceph).
    pub super_options: Vec<String>,
}

impl MountEntry {
    /// Whether the mount is read-only (per-mount `ro`).
    pub fn is_read_only(&self) -> bool {
        self.mount_options.iter().any(|o| o == "ro")
    }

    /// Whether it is a CephFS mount (kernel or ceph-fuse).
    pub fn is_ceph(&self) -> bool {
        self.fs_type == "ceph" || self.fs_type == "fuse.ceph-fuse" || self.fs_type == "fuse.ceph"
    }
}

/// Undoes the kernel's octal escapes (`\040` → space); other bytes are kept as they are.
pub fn unescape(s: &str) -> OsString {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    OsString::from_vec(out)
}

fn unescape_string(s: &str) -> String {
    unescape(s).to_string_lossy().into_owned()
}

fn options(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|o| !o.is_empty())
        .map(unescape_string)
        .collect()
}

/// Parses one line; `None` if it is not a well-formed mountinfo line.
pub fn parse_line(line: &str) -> Option<MountEntry> {
    let fields: Vec<&str> = line.split(' ').filter(|f| !f.is_empty()).collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    if sep < 6 || fields.len() < sep + 3 {
        return None;
    }
    Some(MountEntry {
        mount_id: fields[0].parse().ok()?,
        parent_id: fields[1].parse().ok()?,
        major_minor: fields[2].to_owned(),
        root: PathBuf::from(unescape(fields[3])),
        mount_point: PathBuf::from(unescape(fields[4])),
        mount_options: options(fields[5]),
        fs_type: unescape_string(fields[sep + 1]),
        source: unescape_string(fields[sep + 2]),
        super_options: fields.get(sep + 3).map_or_else(Vec::new, |s| options(s)),
    })
}

/// Parses a whole mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// The mounts listed in `path` (a mountinfo file).
pub fn read_mount_points(path: &Path) -> io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string(path)?))
}

/// The mounts of this process (`/proc/self/mountinfo`).
pub fn mount_points() -> io::Result<Vec<MountEntry>> {
    read_mount_points(Path::new(PROC_SELF_MOUNTINFO))
}

/// Makes `path` absolute and removes `.`, `..` and repeated or trailing slashes, without
/// touching the file system (a hung mount cannot hang this).
pub fn normalize(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The ways `path` may be spelled in mountinfo: normalized, and with its parent's symlinks
/// resolved (mountinfo lists resolved paths). The last component is never resolved, so a
/// symlink at `path` is not followed and a dead mount at `path` is not stat'ed.
fn candidates(path: &Path) -> Vec<PathBuf> {
    let n = normalize(path);
    let mut out = vec![n.clone()];
    if let (Some(parent), Some(name)) = (n.parent(), n.file_name())
        && let Ok(real) = std::fs::canonicalize(parent)
    {
        let r = real.join(name);
        if r != n {
            out.push(r);
        }
    }
    out
}

/// The topmost mount at `path` among `entries`, if any.
pub fn find<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    let cands = candidates(path);
    entries
        .iter()
        .rev()
        .find(|e| cands.contains(&e.mount_point))
}

/// Whether something is mounted at `path` (by `/proc/self/mountinfo`).
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    Ok(find(&mount_points()?, path).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
42 27 254:0 /tmp/bt/a /tmp/bt/b rw,relatime - ext4 /dev/vda rw,discard
310 27 0:52 /volumes/csi/csi-vol-1/4b2c /var/lib/kubelet/plugins/kubernetes.io/csi/cephfs.csi.ceph.com/abc/globalmount rw,relatime shared:200 - ceph 10.0.0.1:6789,10.0.0.2:6789:/volumes/csi/csi-vol-1/4b2c rw,name=vol1,secret=<hidden>,acl,mds_namespace=cephfs
311 27 0:53 / /var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/pv\\0401/mount ro,nosuid,nodev,relatime shared:201 master:7 - fuse.ceph-fuse ceph-fuse rw,user_id=0,group_id=0,allow_other
312 27 0:54 / /mnt/with\\011tab\\012nl\\134bs rw - tmpfs none rw
313 27 0:55 / /mnt/stack rw - tmpfs first rw
314 313 0:56 / /mnt/stack rw - tmpfs second rw
garbage line
15 1 0:3 / /broken rw
";

    /// As the kernel writes a path into mountinfo (`seq_escape` of space, tab, newline
    /// and backslash as three-digit octal).
    fn kernel_escape(b: &[u8]) -> String {
        let mut out = String::new();
        for &c in b {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\\') {
                out.push_str(&format!("\\{c:03o}"));
            } else {
                out.push(char::from(c));
            }
        }
        out
    }

    proptest::proptest! {
        /// Any path of printable ASCII and the four escaped bytes comes back byte for
        /// byte from its escaped form.
        #[test]
        fn unescape_undoes_the_kernels_escape(path in proptest::collection::vec(
            proptest::prop_oneof![0x20u8..0x7f, proptest::strategy::Just(b'\t'), proptest::strategy::Just(b'\n')],
            0..64,
        )) {
            proptest::prop_assert_eq!(unescape(&kernel_escape(&path)).into_vec(), path);
        }

        /// A line made of any mount point, root, type, source and options parses back to
        /// them.
        #[test]
        fn a_line_parses_back_to_its_fields(
            id in 1u64..100_000,
            parent in 1u64..100_000,
            root in "/[ -~\t]{0,30}",
            point in "/[ -~\t\n]{0,30}",
            opts in proptest::collection::vec("[a-z_=0-9]{1,8}", 1..4),
            optional in proptest::collection::vec("(shared|master):[0-9]{1,3}", 0..3),
            fs_type in "[a-z.-]{1,12}",
            source in "[ -~]{1,30}",
        ) {
            let line = format!(
                "{id} {parent} 0:52 {} {} {} {}{}- {} {} rw,name=x",
                kernel_escape(root.as_bytes()),
                kernel_escape(point.as_bytes()),
                opts.join(","),
                optional.join(" "),
                if optional.is_empty() { "" } else { " " },
                kernel_escape(fs_type.as_bytes()),
                kernel_escape(source.as_bytes()),
            );
            let e = parse_line(&line).expect("a well-formed line");
            proptest::prop_assert_eq!(e.mount_id, id);
            proptest::prop_assert_eq!(e.parent_id, parent);
            proptest::prop_assert_eq!(e.root, PathBuf::from(root));
            proptest::prop_assert_eq!(e.mount_point, PathBuf::from(point));
            proptest::prop_assert_eq!(e.mount_options, opts);
            proptest::prop_assert_eq!(e.fs_type, fs_type);
            proptest::prop_assert_eq!(e.source, source);
            proptest::prop_assert_eq!(e.super_options, vec!["rw".to_owned(), "name=x".to_owned()]);
        }

        /// Arbitrary text never panics the parser.
        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,200}") {
            let _ = parse(&text);
        }
    }

    #[test]
    fn unescapes_octal() {
        let cases: &[(&str, &[u8])] = &[
            ("plain", b"plain"),
            ("a\\040b", b"a b"),
            ("\\011\\012\\134", b"\t\n\\"),
            ("trailing\\04", b"trailing\\04"),
            ("not\\999octal", b"not\\999octal"),
            ("\\377", b"\xff"),
            ("\\", b"\\"),
            ("end\\040", b"end "),
        ];
        for (input, want) in cases {
            assert_eq!(unescape(input).into_vec(), want.to_vec(), "{input}");
        }
    }

    #[test]
    fn parses_lines() {
        let entries = parse(SAMPLE);
        assert_eq!(entries.len(), 8, "malformed lines are skipped");
        struct Want<'a> {
            mount_point: &'a str,
            fs_type: &'a str,
            source: &'a str,
            root: &'a str,
            read_only: bool,
            ceph: bool,
        }
        let wants = [
            Want {
                mount_point: "/proc",
                fs_type: "proc",
                source: "proc",
                root: "/",
                read_only: false,
                ceph: false,
            },
            Want {
                mount_point: "/",
                fs_type: "ext4",
                source: "/dev/vda",
                root: "/",
                read_only: false,
                ceph: false,
            },
            Want {
                mount_point: "/tmp/bt/b",
                fs_type: "ext4",
                source: "/dev/vda",
                root: "/tmp/bt/a",
                read_only: false,
                ceph: false,
            },
            Want {
                mount_point: "/var/lib/kubelet/plugins/kubernetes.io/csi/cephfs.csi.ceph.com/abc/globalmount",
                fs_type: "ceph",
                source: "10.0.0.1:6789,10.0.0.2:6789:/volumes/csi/csi-vol-1/4b2c",
                root: "/volumes/csi/csi-vol-1/4b2c",
                read_only: false,
                ceph: true,
            },
            Want {
                mount_point: "/var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/pv 1/mount",
                fs_type: "fuse.ceph-fuse",
                source: "ceph-fuse",
                root: "/",
                read_only: true,
                ceph: true,
            },
            Want {
                mount_point: "/mnt/with\ttab\nnl\\bs",
                fs_type: "tmpfs",
                source: "none",
                root: "/",
                read_only: false,
                ceph: false,
            },
        ];
        for (e, w) in entries.iter().zip(&wants) {
            assert_eq!(e.mount_point, Path::new(w.mount_point));
            assert_eq!(e.fs_type, w.fs_type, "{}", w.mount_point);
            assert_eq!(e.source, w.source, "{}", w.mount_point);
            assert_eq!(e.root, Path::new(w.root), "{}", w.mount_point);
            assert_eq!(e.is_read_only(), w.read_only, "{}", w.mount_point);
            assert_eq!(e.is_ceph(), w.ceph, "{}", w.mount_point);
        }
        let ceph = &entries[3];
        assert_eq!(ceph.mount_id, 310);
        assert_eq!(ceph.parent_id, 27);
        assert_eq!(ceph.major_minor, "0:52");
        assert_eq!(ceph.mount_options, ["rw", "relatime"]);
        assert_eq!(
            ceph.super_options,
            [
                "rw",
                "name=vol1",
                "secret=<hidden>",
                "acl",
                "mds_namespace=cephfs"
            ]
        );
        assert_eq!(
            entries[4].mount_options,
            ["ro", "nosuid", "nodev", "relatime"]
        );
    }

    #[test]
    fn finds_mount_points() {
        let entries = parse(SAMPLE);
        let cases: &[(&str, Option<&str>)] = &[
            ("/proc", Some("proc")),
            ("/proc/", Some("proc")),
            ("/proc/./", Some("proc")),
            ("/tmp/../proc", Some("proc")),
            ("//proc", Some("proc")),
            ("/pro", None),
            ("/proc/self", None),
            (
                "/var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/pv 1/mount",
                Some("ceph-fuse"),
            ),
            (
                "/var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/pv\\0401/mount",
                None,
            ),
            ("/mnt/with\ttab\nnl\\bs", Some("none")),
            // Stacked: the topmost (last) wins.
            ("/mnt/stack", Some("second")),
            ("/broken", None),
        ];
        for (path, source) in cases {
            let found = find(&entries, Path::new(path)).map(|e| e.source.as_str());
            assert_eq!(found, *source, "{path:?}");
        }
    }

    #[test]
    fn normalizes_lexically() {
        let cases = [
            ("/a/b/../c", "/a/c"),
            ("/a/./b/", "/a/b"),
            ("/..", "/"),
            ("/", "/"),
            ("/a//b", "/a/b"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(Path::new(input)), Path::new(want), "{input}");
        }
        assert!(normalize(Path::new("rel")).is_absolute());
    }

    #[test]
    fn reads_this_process_table() {
        // /proc is mounted wherever these tests run on Linux.
        let entries = mount_points().unwrap();
        assert!(!entries.is_empty());
        assert!(is_mount_point(Path::new("/")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()).unwrap());
    }
}
