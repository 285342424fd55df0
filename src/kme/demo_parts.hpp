#pragma once
// Internal to the demos (demo.cpp: the two-KME pair; demo_relay.cpp: a chain through relays).
#include <cstdint>
#include <filesystem>
#include <string>

namespace qkd::kme::demo_detail {

std::uint16_t free_port();
// A secret: created with mode 0600, never readable by others for a moment.
void write_private_file(const std::filesystem::path& p, const std::string& text);
void write_file(const std::filesystem::path& p, const std::string& text);
std::string lower(std::string s);
// A qkdgate site configuration whose QKD profile `profile` uses SAE `sae` on KME `kme` at `port`.
std::string site_config(const std::string& profile, std::uint16_t port, const std::string& sae, const std::string& kme);
// One real mTLS Get status as SAE `sae_file` (pki/<sae_file>.pem) for `slave`; true on 200.
bool probe(std::uint16_t port, const std::filesystem::path& pki, const std::string& sae_file, const std::string& slave);

}  // namespace qkd::kme::demo_detail
