#include "qkd/kme/http_reader.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <fmt/format.h>

#include <algorithm>
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
    chunked_ = false;
    chunk_ = Chunk::Size;
    chunk_left_ = 0;
    trailer_bytes_ = 0;
    body_.clear();
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
    if (chunked_) return parse_chunked();
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
            // Beast stops here (eager(false)) and never sees a chunked body.
            if (parser_->chunked()) {
                chunked_ = true;
                return parse_chunked();
            }
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

RequestReader::Outcome RequestReader::parse_chunked() {
    // RFC 9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; the last chunk has size
    // 0 and is followed by the trailer section and an empty line. Lines end in CRLF (a bare LF is
    // an error: lenient line endings are how request smuggling starts).
    auto bad = [](std::string m) { return Outcome{State::Error, 400, "malformed chunked body: " + std::move(m)}; };
    for (;;) {
        const std::string_view rest(buf_.data() + begin_, end_ - begin_);
        switch (chunk_) {
            case Chunk::Done:
                return {State::Done, 0, {}};
            case Chunk::Data: {
                const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, rest.size()));
                if (n == 0) return {};
                body_.append(rest.data(), n);
                begin_ += n;
                chunk_left_ -= n;
                if (chunk_left_ == 0) chunk_ = Chunk::DataEnd;
                continue;
            }
            case Chunk::DataEnd:
                if (rest.size() < 2) {
                    if (!rest.empty() && rest[0] != '\r') return bad("chunk data is not followed by CRLF");
                    return {};
                }
                if (rest[0] != '\r' || rest[1] != '\n') return bad("chunk data is not followed by CRLF");
                begin_ += 2;
                chunk_ = Chunk::Size;
                continue;
            case Chunk::Size:
            case Chunk::Trailer: {
                const auto eol = rest.find("\r\n");
                const std::size_t line_len = eol == std::string_view::npos ? rest.size() : eol;
                const auto lf = rest.substr(0, line_len).find('\n');
                if (lf != std::string_view::npos) return bad("a line ends in a bare LF; expected CRLF");
                if (chunk_ == Chunk::Size && line_len > kMaxChunkLine)
                    return bad(fmt::format("chunk-size line exceeds {} bytes", kMaxChunkLine));
                if (chunk_ == Chunk::Trailer && trailer_bytes_ + line_len + 2 > header_limit_)
                    return {State::Error, 431, fmt::format("request trailer section exceeds {} bytes", header_limit_)};
                if (eol == std::string_view::npos) return {};
                const std::string_view line = rest.substr(0, eol);
                begin_ += eol + 2;
                if (chunk_ == Chunk::Trailer) {
                    if (line.empty()) {
                        chunk_ = Chunk::Done;
                        continue;
                    }
                    // field-line = field-name ":" OWS field-value OWS; trailers are read and dropped.
                    const auto colon = line.find(':');
                    if (colon == 0 || colon == std::string_view::npos ||
                        line.substr(0, colon).find_first_of(" \t") != std::string_view::npos)
                        return bad("a trailer line is not \"name: value\"");
                    trailer_bytes_ += line.size() + 2;
                    continue;
                }
                std::uint64_t size = 0;
                std::size_t i = 0;
                for (; i < line.size(); ++i) {
                    const char ch = line[i];
                    int v;
                    if (ch >= '0' && ch <= '9') v = ch - '0';
                    else if (ch >= 'a' && ch <= 'f') v = ch - 'a' + 10;
                    else if (ch >= 'A' && ch <= 'F') v = ch - 'A' + 10;
                    else break;
                    if (i >= 16) return bad("chunk size has more than 16 hex digits");
                    size = size * 16 + static_cast<std::uint64_t>(v);
                }
                if (i == 0) return bad("expected a hexadecimal chunk size");
                // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ): ignored, but only after ';'.
                std::size_t j = i;
                while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
                if (j < line.size() && line[j] != ';') return bad("unexpected characters after the chunk size");
                if (size > body_limit_ - body_.size())
                    return {State::Error, 413, fmt::format("request body exceeds {} bytes", body_limit_)};
                if (size == 0) {
                    chunk_ = Chunk::Trailer;
                } else {
                    chunk_left_ = size;
                    chunk_ = Chunk::Data;
                }
                continue;
            }
        }
    }
}

RequestReader::Request RequestReader::take() {
    if (chunked_) {
        Request r = parser_->release();  // the header; Beast was never given the body
        r.chunked(false);                // the body is now whole: as if sent with Content-Length
        r.content_length(body_.size());
        r.body() = std::move(body_);
        reset_parser();
        started_ = end_ > begin_;
        return r;
    }
    Request r = parser_->release();
    reset_parser();
    started_ = end_ > begin_;
    return r;
}

bool RequestReader::continue_due() {
    if (continue_sent_ || !parser_->is_header_done() || body_done()) return false;
    const auto& h = parser_->get();
    if (h.version() < 11 || !boost::beast::iequals(h[http::field::expect], "100-continue")) return false;
    continue_sent_ = true;
    return true;
}

}  // namespace qkd::kme
