"""Backups, restore and rollback (`fab backup`, `fab restore`, `fab rollback`).

Two kinds of backup:
* on each host, per run id: the files a run replaced (runs.py; `fab rollback` puts back the
  newest run's);
* on this machine, `fab backup`: a consistent dump of every cluster database and every file
  the tool manages on every host, with a manifest and sha256 checksums (archive.py);
  `fab restore` puts one back.
"""
