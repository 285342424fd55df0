#include "qkd/kme/config.hpp"

// The checks of key_dir folders that need the file system (config.hpp check_key_dirs): what
// parse_config cannot see.
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "qkd/kme/key_file_index.hpp"
#include "qkd/kme/key_files.hpp"

namespace qkd::kme {
namespace {

namespace fs = std::filesystem;

// The regular files of `dir` that could be key files (at most kMaxKeyDirEntries names looked at).
std::set<std::string> key_file_names(const std::string& dir) {
    std::set<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return names;
    std::size_t seen = 0;
    while (const dirent* e = ::readdir(d)) {
        if (++seen > kMaxKeyDirEntries) break;
        if (is_key_file_name(e->d_name)) names.insert(e->d_name);
    }
    ::closedir(d);
    return names;
}

// The first name of `names` that the key-file index at `path` lists ("<size> <name>" lines), read
// line by line through a fixed buffer; empty if none (or the file cannot be read).
std::string first_listed(const std::string& path, const std::set<std::string>& names) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return {};
    std::string line, found;
    char buf[65536];
    auto take = [&] {
        const auto sp = line.find(' ');
        if (sp != std::string::npos && sp > 0 && line[0] >= '1' && line[0] <= '9' && names.count(line.substr(sp + 1))) found = line.substr(sp + 1);
        line.clear();
    };
    for (ssize_t n; found.empty() && (n = ::read(fd, buf, sizeof buf)) != 0;) {
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (ssize_t i = 0; i < n && found.empty(); ++i) {
            if (buf[i] == '\n') take();
            else if (line.size() < 4096) line += buf[i];
        }
    }
    ::close(fd);
    return found;
}

// A link whose peer KME ID changed gets a new, empty key-file index (key_file_index_path names it
// after the peer): it would take the files still in key_dir from their first byte, though the
// link under its old ID may have handed out key material from them already. Refused when an
// index of this state database for a peer that is no longer configured lists a file that is in
// such a fresh link's key_dir.
void check_stale_indexes(const Config& cfg) {
    const fs::path db(cfg.state_db);
    const std::string dir = db.parent_path().empty() ? std::string(".") : db.parent_path().string();
    const std::string prefix = db.filename().string() + ".keyfiles-";
    std::set<std::string> configured;
    for (const auto& p : cfg.peers)
        if (!p.link.key_dir.empty()) configured.insert(fs::path(key_file_index_path(cfg.state_db, p.kme_id)).filename().string());
    std::vector<std::string> stale;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (const dirent* e = ::readdir(d)) {
            const std::string n = e->d_name;
            if (n.size() > prefix.size() && n.starts_with(prefix) && !configured.count(n)) stale.push_back(n);
        }
        ::closedir(d);
    }
    if (stale.empty()) return;
    for (std::size_t i = 0; i < cfg.peers.size(); ++i) {
        const auto& p = cfg.peers[i];
        if (p.link.key_dir.empty()) continue;
        const auto index = key_file_index_path(cfg.state_db, p.kme_id);
        if (struct stat st {}; ::stat(index.c_str(), &st) == 0) continue;  // the link has its index: offsets are kept
        const auto names = key_file_names(p.link.key_dir);
        if (names.empty()) continue;
        for (const auto& s : stale) {
            const auto path = (fs::path(dir) / s).string();
            if (auto name = first_listed(path, names); !name.empty())
                throw ConfigError(fmt::format(
                    "{}: key 'peer[{}].key_dir': \"{}\" holds the key file \"{}\", which the key-file index {} lists for a link to peer "
                    "KME \"{}\" (was the peer KME renamed?). The link to \"{}\" has no index yet: it would take that file from its first "
                    "byte and hand out key material that may have been handed out before. Keep the old peer KME ID, or start the link "
                    "over (docs/kme.md, \"The index\": the key files of both folders and both indexes removed)",
                    cfg.file, i, p.link.key_dir, escaped_name(name), path, escaped_name(s.substr(prefix.size())), p.kme_id));
        }
    }
}

}  // namespace

void check_key_dirs(const Config& cfg) {
    // What parse_config cannot see: the folders themselves. Each key_dir must be an existing
    // directory, and no other link's, nor the folder of this KME's own files (the state database
    // and the key-file indexes next to it, certificates, keys, seeds, the configuration): every
    // regular file in key_dir is taken as key material.
    struct Id {
        dev_t dev;
        ino_t ino;
        bool operator==(const Id&) const = default;
    };
    auto id_of = [](const std::string& p, Id& out) {
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0) return false;
        out = Id{st.st_dev, st.st_ino};
        return true;
    };
    auto parent = [](const std::string& f) {
        auto d = fs::path(f).parent_path();
        return d.empty() ? std::string(".") : d.string();
    };
    std::vector<std::pair<std::string, std::string>> own;  // (what, folder)
    own.emplace_back("kme.state_db", parent(cfg.state_db));
    own.emplace_back("kme.cert", parent(cfg.cert));
    own.emplace_back("kme.key", parent(cfg.key));
    own.emplace_back("kme.ca", parent(cfg.ca));
    own.emplace_back("the configuration file", parent(cfg.file));
    if (!cfg.local_link.seed_file.empty()) own.emplace_back("local_link.link_seed_file", parent(cfg.local_link.seed_file));
    for (std::size_t i = 0; i < cfg.peers.size(); ++i)
        if (!cfg.peers[i].link.seed_file.empty()) own.emplace_back(fmt::format("peer[{}].link_seed_file", i), parent(cfg.peers[i].link.seed_file));
    std::vector<std::pair<std::size_t, Id>> seen;
    for (std::size_t i = 0; i < cfg.peers.size(); ++i) {
        const auto& d = cfg.peers[i].link.key_dir;
        if (d.empty()) continue;
        const auto key = fmt::format("peer[{}].key_dir", i);
        auto fail = [&](const std::string& what) { throw ConfigError(fmt::format("{}: key '{}': {}", cfg.file, key, what)); };
        struct stat st {};
        if (::stat(d.c_str(), &st) != 0)
            fail(fmt::format("cannot use \"{}\": {}; expected the folder the QKD device drops key files in", d, std::strerror(errno)));
        if (!S_ISDIR(st.st_mode)) fail(fmt::format("\"{}\" is not a directory; expected the folder the QKD device drops key files in", d));
        const Id me{st.st_dev, st.st_ino};
        for (const auto& [j, other] : seen)
            if (other == me)
                fail(fmt::format("\"{}\" is the same folder as peer[{}].key_dir ({}); each link needs a folder of its own", d, j, cfg.peers[j].kme_id));
        for (const auto& [what, folder] : own)
            if (Id o{}; id_of(folder, o) && o == me)
                fail(fmt::format("\"{}\" also holds {} (every file in key_dir is taken as key material): give the key files a folder of their own",
                                 d, what));
        seen.emplace_back(i, me);
    }
    check_stale_indexes(cfg);
}

}  // namespace qkd::kme
