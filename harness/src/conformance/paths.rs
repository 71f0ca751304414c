//! The CO's paths: the parent of every target path and the staging path, made before
//! each check and removed after it, and the check of what is at a path. On this host by
//! default; through hook commands, as csi-sanity's `--csi.createmountpathcmd` and
//! friends, when the driver runs in another mount namespace or container.
//!
//! A hook is run as csi-sanity runs it: the command gets the path as its only argument,
//! with a deadline; a create hook prints the path it made (which the bench then uses),
//! the check hook prints `file`, `directory`, `not_found` or `other`. A command that is
//! a plain program path is executed directly, as csi-sanity does; one with spaces or
//! shell syntax (`docker exec drv /hooks/mk`) runs through `sh -c` with the path
//! appended as `"$1"`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::client::scratch::remove_scratch;

/// What is at a path (csi-sanity's `PathKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    File,
    Directory,
    NotFound,
    Other,
}

impl PathKind {
    /// Parses a check hook's output (surrounding white space ignored).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "file" => Some(Self::File),
            "directory" => Some(Self::Directory),
            "not_found" => Some(Self::NotFound),
            "other" => Some(Self::Other),
            _ => None,
        }
    }

    /// What is at `path` on this host. As csi-sanity, symlinks are followed; a
    /// dangling symlink is `Other` (something was left there).
    pub fn local(path: &Path) -> std::io::Result<Self> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(Self::Directory),
            Ok(m) if m.is_file() => Ok(Self::File),
            Ok(_) => Ok(Self::Other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::symlink_metadata(path) {
                    Ok(_) => Ok(Self::Other),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::NotFound),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

impl fmt::Display for PathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::File => "file",
            Self::Directory => "directory",
            Self::NotFound => "not_found",
            Self::Other => "other",
        })
    }
}

/// Why a hook (or the local operation standing in for it) did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The command could not be started.
    #[error("{flag} {cmd:?} for {path}: could not run it: {source}")]
    Spawn {
        flag: &'static str,
        cmd: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The command did not finish within the deadline (it was killed).
    #[error("{flag} {cmd:?} for {path}: did not finish within {timeout:?}")]
    Timeout {
        flag: &'static str,
        cmd: String,
        path: String,
        timeout: Duration,
    },
    /// The command failed.
    #[error("{flag} {cmd:?} for {path}: {status}; stderr: {stderr}")]
    Exit {
        flag: &'static str,
        cmd: String,
        path: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// The command succeeded but printed something unusable.
    #[error("{flag} {cmd:?} for {path}: {what}, printed {stdout:?}")]
    Output {
        flag: &'static str,
        cmd: String,
        path: String,
        what: &'static str,
        stdout: String,
    },
    /// The operation on this host failed.
    #[error("{what} {path}: {source}")]
    Local {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The hook commands (all optional) and their deadline.
#[derive(Debug, Clone, Default)]
pub struct PathHooks {
    /// Makes the parent of the target paths; prints the path made.
    pub create_target: Option<String>,
    /// Makes the staging path; prints the path made.
    pub create_staging: Option<String>,
    /// Removes the parent of the target paths.
    pub remove_target: Option<String>,
    /// Removes the staging path.
    pub remove_staging: Option<String>,
    /// Prints what is at a path: file, directory, not_found or other.
    pub check_path: Option<String>,
    /// The deadline of every hook (csi-sanity: 10 s).
    pub timeout: Duration,
}

/// Which of the two scratch paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scratch {
    /// The parent of NodePublish's target paths (csi-sanity's mount dir).
    Target,
    /// NodeStage's staging target path.
    Staging,
}

impl PathHooks {
    fn create_hook(&self, s: Scratch) -> Option<(&'static str, &str)> {
        match s {
            Scratch::Target => self
                .create_target
                .as_deref()
                .map(|c| ("--create-target-cmd", c)),
            Scratch::Staging => self
                .create_staging
                .as_deref()
                .map(|c| ("--create-staging-cmd", c)),
        }
    }

    fn remove_hook(&self, s: Scratch) -> Option<(&'static str, &str)> {
        match s {
            Scratch::Target => self
                .remove_target
                .as_deref()
                .map(|c| ("--remove-target-cmd", c)),
            Scratch::Staging => self
                .remove_staging
                .as_deref()
                .map(|c| ("--remove-staging-cmd", c)),
        }
    }

    /// Whether `s` is made by a hook (and so may not exist on this host).
    pub fn is_remote(&self, s: Scratch) -> bool {
        self.create_hook(s).is_some()
    }

    /// Makes the scratch path `s`, suggested at `path`; returns the path to use.
    pub async fn create(&self, s: Scratch, path: &Path) -> Result<PathBuf, PathError> {
        match self.create_hook(s) {
            Some((flag, cmd)) => {
                let out = run(flag, cmd, path, self.timeout).await?;
                let made = out.trim();
                if made.is_empty() {
                    return Err(PathError::Output {
                        flag,
                        cmd: cmd.to_owned(),
                        path: path.display().to_string(),
                        what: "printed no path",
                        stdout: out,
                    });
                }
                Ok(PathBuf::from(made))
            }
            None => {
                std::fs::create_dir_all(path).map_err(|source| PathError::Local {
                    what: "creating",
                    path: path.display().to_string(),
                    source,
                })?;
                Ok(path.to_path_buf())
            }
        }
    }

    /// Removes the scratch path `s` at `path` (as made by [`Self::create`]); returns
    /// what could not be removed. Without a hook, the directory's entries and then the
    /// directory are removed on this host, never recursively (a leftover mount must
    /// not have its contents deleted).
    pub async fn remove(&self, s: Scratch, path: &Path) -> Vec<String> {
        match self.remove_hook(s) {
            Some((flag, cmd)) => match run(flag, cmd, path, self.timeout).await {
                Ok(_) => Vec::new(),
                Err(e) => vec![e.to_string()],
            },
            None => remove_scratch(path),
        }
    }

    /// Why paths the driver makes cannot be checked, if they cannot: the target's
    /// parent is made by a hook (somewhere else) and no check hook is given.
    pub fn unchecked_reason(&self) -> Option<&'static str> {
        (self.create_target.is_some() && self.check_path.is_none()).then_some(
            "--create-target-cmd was given without --check-path-cmd: the target path cannot be checked",
        )
    }

    /// What is at `path`: through the check hook, or on this host.
    pub async fn check(&self, path: &Path) -> Result<PathKind, PathError> {
        match self.check_path.as_deref() {
            Some(cmd) => {
                let flag = "--check-path-cmd";
                let out = run(flag, cmd, path, self.timeout).await?;
                PathKind::parse(&out).ok_or_else(|| PathError::Output {
                    flag,
                    cmd: cmd.to_owned(),
                    path: path.display().to_string(),
                    what: "expected file, directory, not_found or other",
                    stdout: out,
                })
            }
            None => PathKind::local(path).map_err(|source| PathError::Local {
                what: "checking",
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

/// Whether `cmd` is a plain program path that can be executed without a shell.
fn is_plain(cmd: &str) -> bool {
    !cmd.is_empty()
        && cmd
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:=@%".contains(c))
}

/// Runs `cmd path` with a deadline; returns its standard output.
async fn run(
    flag: &'static str,
    cmd: &str,
    path: &Path,
    timeout: Duration,
) -> Result<String, PathError> {
    let mut command = if is_plain(cmd) {
        tokio::process::Command::new(cmd)
    } else {
        // `sh -c 'CMD "$1"' sh PATH`: the path stays one argument whatever it holds.
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(format!("{cmd} \"$1\"")).arg("sh");
        c
    };
    command
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let path_s = || path.display().to_string();
    let child = command.spawn().map_err(|source| PathError::Spawn {
        flag,
        cmd: cmd.to_owned(),
        path: path_s(),
        source,
    })?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => {
            return Err(PathError::Timeout {
                flag,
                cmd: cmd.to_owned(),
                path: path_s(),
                timeout,
            });
        }
        Ok(Err(source)) => {
            return Err(PathError::Spawn {
                flag,
                cmd: cmd.to_owned(),
                path: path_s(),
                source,
            });
        }
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if stderr.len() > 500 {
            let mut cut = 500;
            while !stderr.is_char_boundary(cut) {
                cut -= 1;
            }
            stderr.truncate(cut);
            stderr.push('…');
        }
        return Err(PathError::Exit {
            flag,
            cmd: cmd.to_owned(),
            path: path_s(),
            status: out.status,
            stderr,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds() {
        let check = |s: &str, want: Option<PathKind>| assert_eq!(PathKind::parse(s), want, "{s:?}");
        check("file\n", Some(PathKind::File));
        check(" directory ", Some(PathKind::Directory));
        check("not_found", Some(PathKind::NotFound));
        check("other", Some(PathKind::Other));
        check("dir", None);
        check("", None);
    }

    #[test]
    fn plain_commands_run_without_a_shell() {
        let check = |s: &str, want: bool| assert_eq!(is_plain(s), want, "{s:?}");
        check("/usr/local/bin/mk-target", true);
        check("./hooks/check-path.sh", true);
        check("docker exec drv /mk", false);
        check("/x/mk; rm -rf /", false);
        check("$HOME/mk", false);
        check("", false);
    }

    #[tokio::test]
    async fn hooks_run_with_the_path_and_report_failures() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = PathHooks {
            timeout: Duration::from_secs(10),
            ..PathHooks::default()
        };
        // A command with shell syntax gets the path as "$1".
        h.create_target = Some("mkdir -p \"$1\" && printf '%s/made\\n'".to_owned());
        let p = dir.path().join("a b");
        let made = h.create(Scratch::Target, &p).await.unwrap();
        assert_eq!(made, dir.path().join("a b/made"));
        assert!(p.is_dir());

        h.check_path = Some("test -d \"$1\" && echo directory || echo not_found; :".to_owned());
        assert_eq!(h.check(&p).await.unwrap(), PathKind::Directory);
        h.check_path = Some("echo maybe; :".to_owned());
        let e = h.check(&p).await.unwrap_err().to_string();
        assert!(e.contains("\"maybe\\n\""), "{e}");

        h.remove_target = Some("echo no such luck >&2; exit 3; :".to_owned());
        let problems = h.remove(Scratch::Target, &p).await;
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("exit status: 3") && problems[0].contains("no such luck"),
            "{problems:?}"
        );

        h.timeout = Duration::from_millis(200);
        h.remove_staging = Some("sleep 5; :".to_owned());
        let problems = h.remove(Scratch::Staging, &p).await;
        assert!(problems[0].contains("did not finish"), "{problems:?}");

        h.create_staging = Some("/nonexistent/hook".to_owned());
        let e = h
            .create(Scratch::Staging, &p)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("could not run it"), "{e}");
    }

    #[test]
    fn local_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "").unwrap();
        let l = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &l).unwrap();
        assert_eq!(PathKind::local(dir.path()).unwrap(), PathKind::Directory);
        assert_eq!(PathKind::local(&f).unwrap(), PathKind::File);
        assert_eq!(PathKind::local(&l).unwrap(), PathKind::Other);
        assert_eq!(
            PathKind::local(&dir.path().join("none")).unwrap(),
            PathKind::NotFound
        );
    }
}
