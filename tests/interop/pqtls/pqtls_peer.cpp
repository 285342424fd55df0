// Minimal TLS 1.3 peer on plain OpenSSL + qkd::pqtls::configure_groups, for interop tests on
// 127.0.0.1 (stand-in for the KME server and the SAE client until they reuse these scripts).
//
//   pqtls_peer server [--groups G1,G2] [--pq-only]          prints "PORT <n>", serves one client
//   pqtls_peer client --port N [--groups G1,G2] [--pq-only]
// Output lines: "GROUP <negotiated>", "REPLY <line>", or "HANDSHAKE_FAILED <reason>" (exit 2).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>

#include "qkd/crypto/pq_tls.hpp"
#include "../../unit/pqtls/tls_pair.hpp"

namespace {

constexpr int kTimeoutMs = 10000;

std::string ssl_errors() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        out += out.empty() ? "" : "; ";
        out += buf;
    }
    return out.empty() ? "peer closed or refused" : out;
}

void set_timeouts(int fd) {
    timeval tv{kTimeoutMs / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string read_line(SSL* ssl) {
    std::string line;
    char c;
    while (line.size() < 256 && SSL_read(ssl, &c, 1) == 1 && c != '\n') line += c;
    return line;
}

int usage() {
    std::fprintf(stderr, "usage: pqtls_peer server|client [--port N] [--groups A,B] [--pq-only]\n");
    return 64;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage();
    std::signal(SIGPIPE, SIG_IGN);  // report a closed connection as an error, do not die
    const std::string mode = argv[1];
    qkd::pqtls::GroupConfig cfg;
    int port = 0;
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--pq-only") {
            cfg.pq_only = true;
        } else if (a == "--groups" && i + 1 < argc) {
            cfg.groups.clear();
            std::stringstream ss(argv[++i]);
            for (std::string g; std::getline(ss, g, ',');) cfg.groups.push_back(g);
        } else if (a == "--port" && i + 1 < argc) {
            port = std::atoi(argv[++i]);
        } else {
            return usage();
        }
    }
    const bool server = mode == "server";
    if (!server && (mode != "client" || port <= 0)) return usage();

    auto ctx = server ? qkd::test::make_server_ctx() : qkd::test::make_client_ctx();
    if (auto r = qkd::pqtls::configure_groups(ctx.get(), cfg); !r) {
        std::printf("CONFIG_FAILED %s\n", r.error().c_str());
        return 1;
    }

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (server) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        socklen_t len = sizeof addr;
        if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 1) != 0 ||
            getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            std::perror("bind/listen");
            return 1;
        }
        std::printf("PORT %d\n", ntohs(addr.sin_port));
        std::fflush(stdout);
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, kTimeoutMs) != 1) {
            std::printf("TIMEOUT no client within %d ms\n", kTimeoutMs);
            return 1;
        }
        const int conn = accept(fd, nullptr, nullptr);
        close(fd);
        fd = conn;
    } else if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        std::perror("connect");
        return 1;
    }
    set_timeouts(fd);

    SSL* ssl = SSL_new(ctx.get());
    SSL_set_fd(ssl, fd);
    if ((server ? SSL_accept(ssl) : SSL_connect(ssl)) != 1) {
        std::printf("HANDSHAKE_FAILED %s\n", ssl_errors().c_str());
        SSL_free(ssl);
        close(fd);
        return 2;
    }
    const std::string group = qkd::pqtls::negotiated_group(ssl);
    std::printf("GROUP %s\n", group.c_str());
    std::fflush(stdout);
    int rc = 0;
    if (server) {
        const std::string line = read_line(ssl);
        const std::string reply = "pong " + line + " " + group + "\n";
        if (SSL_write(ssl, reply.data(), static_cast<int>(reply.size())) <= 0) rc = 3;
    } else {
        const std::string ping = "ping\n";
        if (SSL_write(ssl, ping.data(), static_cast<int>(ping.size())) <= 0) rc = 3;
        std::printf("REPLY %s\n", read_line(ssl).c_str());
    }
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    return rc;
}
