//! The versions a file had in HEAD's history (read-only): the commits that changed it, newest
//! first, and each one's blob (`Repo::blob`). What the bytes mean is the caller's business.

use super::{GitError, Repo};

impl Repo {
    /// The commits of HEAD's history that changed `rel`, newest first, at most `limit`; none on
    /// an unborn branch.
    pub fn commits_changing(&self, rel: &str, limit: usize) -> Result<Vec<String>, GitError> {
        if self.head()?.is_none() {
            return Ok(Vec::new());
        }
        let max = format!("--max-count={limit}");
        let o = self.query(&["rev-list", &max, "HEAD", "--", rel])?;
        Ok(String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;
    use std::time::Duration;

    fn git(dir: &Path, args: &[&str]) {
        let st = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .expect("git must be installed");
        assert!(st.status.success(), "git {args:?}: {st:?}");
    }

    #[test]
    fn every_version_of_the_file_newest_first_and_only_its_own() {
        let d = tempfile::tempdir().unwrap();
        git(d.path(), &["init", "-q", "-b", "main"]);
        let repo = Repo::open(d.path(), Duration::from_secs(5)).unwrap();
        assert!(repo.commits_changing("compose.env", 10).unwrap().is_empty());
        for (i, v) in ["v1", "v2", "v3"].iter().enumerate() {
            std::fs::write(d.path().join("compose.env"), v).unwrap();
            git(d.path(), &["add", "compose.env"]);
            git(d.path(), &["commit", "-q", "-m", &format!("env {i}")]);
            // A commit that does not touch the file is not one of its versions.
            std::fs::write(d.path().join("other"), v).unwrap();
            git(d.path(), &["add", "other"]);
            git(d.path(), &["commit", "-q", "-m", &format!("other {i}")]);
        }
        let got = repo.commits_changing("compose.env", 10).unwrap();
        let blobs: Vec<Vec<u8>> = got
            .iter()
            .map(|c| repo.blob(c, "compose.env").unwrap().unwrap())
            .collect();
        assert_eq!(blobs, [b"v3".to_vec(), b"v2".to_vec(), b"v1".to_vec()]);
        assert_eq!(repo.commits_changing("compose.env", 2).unwrap().len(), 2);
    }
}
