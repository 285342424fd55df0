#pragma once
// Secrets at rest (issue 17, item 4). The files that let someone derive or read keys are the link
// seed files, the TLS private key, the state database (it holds the local link's seed and every
// reservation) with its WAL and the key-file indexes, and the key files a QKD device drops in
// key_dir. qkd-kme creates its own files and folders owner-only and, like ssh with a private key,
// refuses to start on one that other users can open, naming the file and the fix.
#include <string>

#include "qkd/kme/config.hpp"

namespace qkd::kme {

// Creates the missing folders of `dir` with mode 0700 (existing ones are left as they are).
void make_private_dirs(const std::string& dir);

// Throws ConfigError naming the configuration file, the key, the path, its mode and the chmod that
// fixes it when a seed file, the TLS private key or a state file (if it exists) gives any access
// to the group or to others, or when a key_dir can be listed or entered by others (the group may
// keep access there, for a device agent that delivers files as another user). Missing files are
// not this check's business: reading them reports that. `serve`, `demo` and `check-config` run it.
void check_secrets_at_rest(const Config& cfg);

}  // namespace qkd::kme
