#include "qkd/kme/secrets_at_rest.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "qkd/kme/key_files.hpp"

namespace qkd::kme {
namespace {

namespace fs = std::filesystem;

struct Secret {
    std::string key;   // the configuration key that names it
    std::string path;
    std::string what;  // what it holds, for the message
};

}  // namespace

void make_private_dirs(const std::string& dir) {
    if (dir.empty()) return;
    fs::path p;
    for (const auto& part : fs::path(dir)) {
        p /= part;
        if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST)
            throw std::runtime_error(fmt::format("{}: cannot create folder: {}", p.string(), std::strerror(errno)));
    }
}

void check_secrets_at_rest(const Config& cfg) {
    std::vector<Secret> files;
    files.push_back({"kme.key", cfg.key, "the KME's TLS private key"});
    if (!cfg.local_link.seed_file.empty())
        files.push_back({"local_link.link_seed_file", cfg.local_link.seed_file, "the local link's seed (every key of a local pair)"});
    for (std::size_t i = 0; i < cfg.peers.size(); ++i) {
        const auto& p = cfg.peers[i];
        if (!p.link.seed_file.empty())
            files.push_back({fmt::format("peer[{}].link_seed_file", i), p.link.seed_file,
                             fmt::format("the seed of the link to {} (every key of that link)", p.kme_id)});
    }
    const char* state_what = "the KME's state (the local link's seed, reservations)";
    for (const char* suffix : {"", "-wal", "-shm", "-journal"})
        files.push_back({"kme.state_db", cfg.state_db + suffix, state_what});
    for (const auto& p : cfg.peers)
        if (!p.link.key_dir.empty())
            files.push_back({"kme.state_db", key_file_index_path(cfg.state_db, p.kme_id), "the key-file index of a link"});
    for (const auto& f : files) {
        struct stat st {};
        if (::stat(f.path.c_str(), &st) != 0) continue;  // not there (yet): created owner-only, or reported when read
        const auto mode = st.st_mode & 07777;
        if ((mode & 077) == 0) continue;
        throw ConfigError(fmt::format("{}: key '{}': {} is open to other users (mode {:04o}) and holds {}; run `chmod 600 {}` "
                                      "(qkd-kme, like ssh with a private key, refuses secrets that others can read)",
                                      cfg.file, f.key, f.path, mode, f.what, f.path));
    }
    for (std::size_t i = 0; i < cfg.peers.size(); ++i) {
        const auto& d = cfg.peers[i].link.key_dir;
        struct stat st {};
        if (d.empty() || ::stat(d.c_str(), &st) != 0) continue;  // check_key_dirs reports a missing folder
        const auto mode = st.st_mode & 07777;
        if ((mode & 007) == 0) continue;
        throw ConfigError(fmt::format("{}: key 'peer[{}].key_dir': {} can be listed or entered by every user (mode {:04o}) and holds "
                                      "the link's key material; run `chmod o-rwx {}` (the group may keep access, for a device agent "
                                      "that delivers the files as another user)",
                                      cfg.file, i, d, mode, d));
    }
}

}  // namespace qkd::kme
