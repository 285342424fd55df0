#pragma once
// A small test PKI for the demo: an EC P-256 CA and leaf certificates with SANs and EKUs.
#include <string>
#include <vector>

namespace qkd::kme::pki {

struct LeafSpec {
    std::string cn;
    std::vector<std::string> sans;  // OpenSSL syntax: "DNS:localhost", "IP:127.0.0.1", "URI:urn:..."
    bool server = false;            // serverAuth EKU (clientAuth is always set)
};

// Writes DIR/ca.pem + DIR/ca.key. Throws std::runtime_error on failure.
void make_ca(const std::string& dir, const std::string& cn);
// Writes DIR/NAME.pem + DIR/NAME.key signed by DIR/ca.pem.
void make_leaf(const std::string& dir, const std::string& name, const LeafSpec& spec);

}  // namespace qkd::kme::pki
