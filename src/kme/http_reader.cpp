#include "qkd/kme/http_reader.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <fmt/format.h>

#include <cstring>
#include <string_view>

namespace qkd::kme {
namespace http = boost::beast::http;

RequestReader::RequestReader(std::size_t header_limit, std::size_t body_limit) : header_limit_(header_limit), body_limit_(body_limit) {
    reset_parser();
}

RequestReader::~RequestReader() = default;

void RequestReader::reset_parser() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(header_limit_));
    parser_->body_limit(body_limit_);
    parser_->eager(false);  // stop after the header: it is checked before any body is parsed
    continue_sent_ = false;
    header_checked_ = false;
}

std::span<char> RequestReader::prepare(std::size_t min) {
    if (begin_ == end_) begin_ = end_ = 0;
    if (begin_ > 0 && buf_.size() - end_ < min) {  // move the unparsed rest to the front
        std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    if (buf_.size() - end_ < min) buf_.resize(end_ + min);
    return {buf_.data() + end_, buf_.size() - end_};
}

void RequestReader::commit(std::size_t n) { end_ += std::min(n, buf_.size() - end_); }

RequestReader::Outcome RequestReader::parse() {
    if (end_ > begin_) started_ = true;
    for (;;) {
        if (parser_->is_done()) return {State::Done, 0, {}};
        if (begin_ == end_) return {};
        if (!parser_->is_header_done()) {
            // Beast checks its header limit on the request line and on the fields separately: a
            // header that arrives in one piece could reach twice the limit. Count the whole here.
            const std::string_view rest(buf_.data() + begin_, end_ - begin_);
            const auto eoh = rest.find("\r\n\r\n");
            if ((eoh == std::string_view::npos ? rest.size() : eoh + 4) > header_limit_)
                return {State::Error, 431, fmt::format("request header exceeds {} bytes", header_limit_)};
        }
        boost::system::error_code ec;
        const std::size_t n = parser_->put(boost::asio::buffer(buf_.data() + begin_, end_ - begin_), ec);
        begin_ += n;
        if (ec == http::error::need_more) {
            if (n == 0) break;
            continue;
        }
        if (ec == http::error::body_limit) return {State::Error, 413, fmt::format("request body exceeds {} bytes", body_limit_)};
        if (ec == http::error::header_limit) return {State::Error, 431, fmt::format("request header exceeds {} bytes", header_limit_)};
        if (ec) return {State::Error, 400, fmt::format("malformed HTTP/1.1 request: {}", ec.message())};
        if (parser_->is_header_done() && !header_checked_) {
            header_checked_ = true;
            // Chunked request bodies are refused (RFC 9112 allows 411): Boost 1.74's chunk parser
            // asserts on some malformed trailers that arrive in pieces (found by fuzzing), and
            // ETSI 014 clients send Content-Length.
            if (parser_->chunked())
                return {State::Error, 411, "chunked request bodies are not accepted; send the body with Content-Length"};
            parser_->eager(true);
            continue;
        }
        if (n == 0 && !parser_->is_done()) break;
    }
    // Whatever is buffered cannot be parsed without more. The parser enforces the limits; this is
    // a backstop against a buffer that would grow without them.
    if (end_ - begin_ > header_limit_ + body_limit_ + 65536)
        return {State::Error, 413, fmt::format("request exceeds {} bytes", header_limit_ + body_limit_)};
    return {};
}

RequestReader::Request RequestReader::take() {
    Request r = parser_->release();
    reset_parser();
    started_ = end_ > begin_;
    return r;
}

bool RequestReader::continue_due() {
    if (continue_sent_ || !parser_->is_header_done() || parser_->is_done()) return false;
    const auto& h = parser_->get();
    if (h.version() < 11 || !boost::beast::iequals(h[http::field::expect], "100-continue")) return false;
    continue_sent_ = true;
    return true;
}

}  // namespace qkd::kme
