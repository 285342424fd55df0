#pragma once
// A throw-away PKI for the SAE integration tests, made with the OpenSSL API: a CA and leaf
// certificates (EC P-256) written as PEM files.
#include <filesystem>
#include <string>
#include <vector>

namespace qkd::sae::testing {

struct Issued {
    std::filesystem::path cert;
    std::filesystem::path key;
};

class TestCa {
public:
    // Creates DIR/<name>_ca.pem (+ key) with subject CN=<name>.
    TestCa(const std::filesystem::path& dir, const std::string& name);
    ~TestCa();
    TestCa(const TestCa&) = delete;
    TestCa& operator=(const TestCa&) = delete;

    const std::filesystem::path& cert_path() const { return cert_path_; }
    // A leaf signed by this CA: subject CN=<cn>, subjectAltName from `sans` ("DNS:x", "IP:1.2.3.4",
    // "URI:urn:..."), valid for `days` (negative: already expired).
    Issued issue(const std::string& file_stem, const std::string& cn, const std::vector<std::string>& sans,
                 int days = 30) const;

private:
    std::filesystem::path dir_;
    std::filesystem::path cert_path_;
    void* key_ = nullptr;   // EVP_PKEY*
    void* cert_ = nullptr;  // X509*
};

}  // namespace qkd::sae::testing
