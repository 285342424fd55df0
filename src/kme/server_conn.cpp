// One API connection of the KME (see server_conn.hpp): TLS over memory BIOs, HTTP/1.1 keep-alive,
// requests handed to the router and answers written back on the connection's strand.
#include "server_conn.hpp"

#include <openssl/err.h>

#include <algorithm>
#include <iterator>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/status.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "qkd/common/encoding.hpp"
#include "qkd/common/openssl_error.hpp"
#include "qkd/etsi014/codec.hpp"
#include "qkd/kme/identity.hpp"

namespace qkd::kme::detail {
namespace asio = boost::asio;
namespace http = boost::beast::http;

ApiConn::~ApiConn() {
    if (ssl) SSL_free(ssl);
    wipe_string(out);
    std::lock_guard lk(sh->mu);
    sh->conns.erase(this);
}

void ApiConn::start() {
    boost::system::error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    sock.non_blocking(true, ec);
    ssl = SSL_new(sh->ssl_ctx.native_handle());
    rbio = BIO_new(BIO_s_mem());
    wbio = BIO_new(BIO_s_mem());
    if (ec || !ssl || !rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        return close();
    }
    BIO_set_mem_eof_return(rbio, -1);  // empty means "more to come", not end of stream
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_accept_state(ssl);
    {
        std::lock_guard lk(sh->mu);
        sh->conns.emplace(this, weak_from_this());
    }
    arm(sh->cfg.request_timeout);
    handshake();
}

// Sends what OpenSSL wrote to wbio, then runs `next`. Usually one non-blocking send; a
// full socket buffer waits for the reactor.
void ApiConn::flush(Step next) {
    char* p = nullptr;
    const long n = BIO_get_mem_data(wbio, &p);
    if (n <= 0) return ((*this).*next)();
    boost::system::error_code ec;
    const std::size_t sent = sock.write_some(asio::buffer(p, static_cast<std::size_t>(n)), ec);
    if (!ec && sent == static_cast<std::size_t>(n)) {
        (void)BIO_reset(wbio);
        return ((*this).*next)();
    }
    if (ec && ec != asio::error::would_block) return close_now();
    // The rest stays in wbio until written: nothing else touches the TLS state meanwhile.
    asio::async_write(sock, asio::buffer(p + sent, static_cast<std::size_t>(n) - sent),
                      [self = shared_from_this(), next](boost::system::error_code ec2, std::size_t) {
                          if (ec2 || self->closed) return self->close_now();
                          (void)BIO_reset(self->wbio);
                          ((*self).*next)();
                      });
}

// More ciphertext from the socket into rbio, then `next`.
void ApiConn::need_input(Step next) {
    sock.async_read_some(asio::buffer(net), [self = shared_from_this(), next](boost::system::error_code ec, std::size_t n) {
        if (ec || self->closed) return self->close_now();
        if (BIO_write(self->rbio, self->net.data(), static_cast<int>(n)) != static_cast<int>(n)) return self->close_now();
        ((*self).*next)();
    });
}

// After an SSL call that returned r <= 0: wait for input, or give up on the connection.
void ApiConn::on_ssl_wait(int r, Step retry) {
    const int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ) return flush(retry == &ApiConn::handshake ? &ApiConn::input_then_handshake : &ApiConn::input_then_read);
    fatal = e != SSL_ERROR_ZERO_RETURN;  // no close_notify after a fatal error
    ERR_clear_error();
    close();
}

void ApiConn::handshake() {
    ERR_clear_error();  // SSL_get_error reads this thread's queue: nothing stale in it
    const int r = SSL_do_handshake(ssl);
    if (r == 1) {
        sh->metrics.tls_handshake(true);
        X509* cert = SSL_get1_peer_certificate(ssl);
        auto names = cert_names(cert);
        X509_free(cert);
        caller.cert_cn = names.cn;
        caller.sae_id = sae_id_from_cert(sh->cfg, names).value_or("");
        return flush(&ApiConn::next_request);  // the server's last flight (session tickets)
    }
    if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ) {
        sh->metrics.tls_handshake(false);
        spdlog::debug("TLS handshake failed: {}", qkd::openssl_errors());
        return flush(&ApiConn::close);  // the alert, if any
    }
    on_ssl_wait(r, &ApiConn::handshake);
}

void ApiConn::next_request() {
    arm(sh->cfg.request_timeout);  // idle keep-alive and the request's arrival
    parse();
}

void ApiConn::parse() {
    auto o = reader.parse();
    if (o.state == RequestReader::State::Done) return dispatch();
    if (o.state == RequestReader::State::Error) return fail(o.status, o.message);
    if (reader.continue_due()) {
        out = "HTTP/1.1 100 Continue\r\n\r\n";
        after = After::Read;
        return write_out();
    }
    read_more();
}

void ApiConn::read_more() {
    if (peer_done) return close();
    bool got = false;
    int r = 0;
    for (;;) {
        auto room = reader.prepare();
        ERR_clear_error();
        r = SSL_read(ssl, room.data(), static_cast<int>(std::min<std::size_t>(room.size(), 1 << 30)));
        if (r <= 0) break;
        reader.commit(static_cast<std::size_t>(r));
        got = true;
    }
    if (got) {
        const int e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_READ) return parse();
        if (e == SSL_ERROR_ZERO_RETURN) {  // a request and close_notify in one flight
            peer_done = true;
            return parse();
        }
    }
    on_ssl_wait(r, &ApiConn::read_more);
}

void ApiConn::fail(unsigned status, const std::string& message) {
    Response res;
    res.status = status;
    res.keep_alive = false;
    res.body = etsi014::encode(etsi014::ErrorBody{message, {}});
    sh->metrics.record(Endpoint::Other, static_cast<int>(status), {});
    respond(std::move(res));
}

void ApiConn::dispatch() {
    disarm();  // the key manager bounds its own work (peer timeout)
    t0 = std::chrono::steady_clock::now();
    // The router and the key manager answer problems with a response; anything thrown
    // (out of memory, a bug) costs this request a 500, never the process.
    try {
        dispatch_route();
    } catch (const std::exception& e) {
        spdlog::error("request failed: {}", e.what());
        ++request_no;  // should the key manager still answer it: ignored
        fail(500, "internal error; see the KME's log");
    }
}

void ApiConn::dispatch_route() {
    const std::uint64_t no = ++request_no;
    route(reader.take(), caller, sh->km, [self = shared_from_this(), no](Routed r) {
        auto ex = self->sock.get_executor();
        asio::post(ex, [self = std::move(self), r = std::move(r), no]() mutable {
            if (self->closed || self->request_no != no) return wipe_string(r.response.body);
            self->sh->metrics.record(r.endpoint, static_cast<int>(r.response.status), std::chrono::steady_clock::now() - self->t0);
            self->respond(std::move(r.response));
        });
    });
}

void ApiConn::respond(Response res) {
    if (closed) return wipe_string(res.body);
    const auto reason = http::obsolete_reason(static_cast<http::status>(res.status));
    out.clear();
    fmt::format_to(std::back_inserter(out), "HTTP/1.{} {} {}\r\nServer: qkd-kme\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                   res.version == 10 ? 0 : 1, res.status, std::string_view(reason.data(), reason.size()), res.body.size());
    if (res.allow) fmt::format_to(std::back_inserter(out), "Allow: {}\r\n", res.allow);
    if (!res.keep_alive && res.version != 10) out += "Connection: close\r\n";
    if (res.keep_alive && res.version == 10) out += "Connection: keep-alive\r\n";
    out += "\r\n";
    out += res.body;
    wipe_string(res.body);  // may hold Base64 key material
    after = res.keep_alive ? After::NextRequest : After::Close;
    arm(sh->cfg.request_timeout);
    write_out();
}

void ApiConn::write_out() {
    // Into wbio in one go (a memory BIO takes everything), then out to the socket.
    ERR_clear_error();
    const int r = SSL_write(ssl, out.data(), static_cast<int>(out.size()));
    wipe_string(out);
    if (r <= 0) {
        fatal = true;
        ERR_clear_error();
        return close();
    }
    switch (after) {
        case After::NextRequest: return flush(&ApiConn::next_request);
        case After::Read: return flush(&ApiConn::read_more);
        case After::Close: return flush(&ApiConn::close);
    }
}

// Closes after a last close_notify (best effort, never waits).
void ApiConn::close() {
    if (closed) return;
    ERR_clear_error();
    if (ssl && !fatal && SSL_is_init_finished(ssl) && SSL_shutdown(ssl) >= 0) {
        char* p = nullptr;
        const long n = BIO_get_mem_data(wbio, &p);
        boost::system::error_code ec;
        if (n > 0) sock.write_some(asio::buffer(p, static_cast<std::size_t>(n)), ec);
    }
    close_now();
}

void ApiConn::close_now() {
    if (closed) return;
    closed = true;
    disarm();
    ERR_clear_error();
    boost::system::error_code ec;
    sock.shutdown(tcp::socket::shutdown_both, ec);
    sock.close(ec);
    wipe_string(out);
    std::lock_guard lk(sh->mu);
    sh->conns.erase(this);
}

void ApiConn::expire() {
    if (!closed && steady_now_ns() >= deadline_ns.load(std::memory_order_relaxed)) close_now();  // no close_notify for a peer that timed out
}

}  // namespace qkd::kme::detail
