// Full TLS 1.3 handshakes per second on 127.0.0.1 (our server and client, no resumption) with
// X25519MLKEM768 against X25519 alone, measured in the same run.
//   handshake_bench [seconds-per-group]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <thread>

#include "../../tests/unit/pqtls/tls_pair.hpp"
#include "qkd/crypto/pq_tls.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double handshakes_per_second(const std::string& group, double seconds) {
    auto sctx = qkd::test::make_server_ctx();
    auto cctx = qkd::test::make_client_ctx();
    for (SSL_CTX* c : {sctx.get(), cctx.get()}) {
        SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
        if (auto r = qkd::pqtls::configure_groups(c, {{group}, false}); !r) {
            std::printf("configure_groups(%s): %s\n", group.c_str(), r.error().c_str());
            return 0;
        }
    }
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        return 0;
    std::atomic<bool> stop{false};
    std::thread server([&] {
        while (true) {
            int fd = accept(lfd, nullptr, nullptr);
            if (fd < 0 || stop) {
                if (fd >= 0) close(fd);
                return;
            }
            SSL* ssl = SSL_new(sctx.get());
            SSL_set_fd(ssl, fd);
            if (SSL_accept(ssl) == 1) SSL_shutdown(ssl);
            SSL_free(ssl);
            close(fd);
        }
    });
    int count = 0;
    bool right_group = true;
    const auto t0 = Clock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) break;
        SSL* ssl = SSL_new(cctx.get());
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) == 1) {
            ++count;
            right_group = right_group && qkd::pqtls::negotiated_group(ssl) == group;
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(fd);
        elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    }
    stop = true;
    int fd = socket(AF_INET, SOCK_STREAM, 0);  // wake the acceptor
    connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    close(fd);
    server.join();
    close(lfd);
    if (!right_group) std::printf("warning: %s was not always negotiated\n", group.c_str());
    return count / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
    const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
    std::signal(SIGPIPE, SIG_IGN);  // a peer closing first must not kill the benchmark
    const double x25519 = handshakes_per_second("X25519", seconds);
    const double hybrid = handshakes_per_second("X25519MLKEM768", seconds);
    std::printf("TLS 1.3 full handshakes/s on loopback (Ed25519 certificate, client+server in one process)\n");
    std::printf("%-16s %10.0f\n%-16s %10.0f\n", "X25519", x25519, "X25519MLKEM768", hybrid);
    if (x25519 > 0) std::printf("X25519MLKEM768 / X25519 = %.2f\n", hybrid / x25519);
    return 0;
}
