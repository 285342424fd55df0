#include "qkd/kme/http_reader.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

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
    header_bytes_ = 0;
    last_chunk_size_ = 0;
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
            // Beast may already have taken the request line and whole field lines (header_bytes_,
            // always ending in CRLF): then an empty line at the front ends the header.
            const std::string_view rest(buf_.data() + begin_, end_ - begin_);
            std::size_t head;
            if (header_bytes_ > 0 && rest.starts_with("\r\n")) {
                head = 2;
            } else {
                const auto eoh = rest.find("\r\n\r\n");
                head = eoh == std::string_view::npos ? rest.size() : eoh + 4;
            }
            if (header_bytes_ + head > header_limit_)
                return {State::Error, 431, fmt::format("request header exceeds {} bytes", header_limit_)};
            // Lines end in CRLF, and no other control character than HTAB appears (RFC 9110 5.5,
            // RFC 9112 2.2). Beast finds some of these when the header comes in one piece but
            // steps over them when it comes in several; checked here, the answer does not depend
            // on how TLS records split the header.
            for (std::size_t i = 0; i < head; ++i) {
                const auto u = static_cast<unsigned char>(rest[i]);
                if ((u < 0x20 && u != '\t' && u != '\r' && u != '\n') || u == 0x7f)
                    return {State::Error, 400, fmt::format("malformed HTTP/1.1 request: control character 0x{:02x} in the header", u)};
                if (rest[i] == '\n' && (i == 0 || rest[i - 1] != '\r'))
                    return {State::Error, 400, "malformed HTTP/1.1 request: a header line ends in a bare LF; expected CRLF"};
                if (rest[i] == '\r' && i + 1 < head && rest[i + 1] != '\n')
                    return {State::Error, 400, "malformed HTTP/1.1 request: a CR in the header is not followed by LF"};
            }
        }
        boost::system::error_code ec;
        const std::size_t n = parser_->put(boost::asio::buffer(buf_.data() + begin_, end_ - begin_), ec);
        begin_ += n;
        if (!header_checked_) header_bytes_ += n;
        if (ec == http::error::need_more) {
            if (n == 0) break;
            continue;
        }
        if (ec == http::error::body_limit) return {State::Error, 413, fmt::format("request body exceeds {} bytes", body_limit_)};
        if (ec == http::error::header_limit) return {State::Error, 431, fmt::format("request header exceeds {} bytes", header_limit_)};
        if (ec == http::error::bad_transfer_encoding || ec == http::error::bad_content_length)
            return {State::Error, 400,
                    "malformed HTTP/1.1 request: the body length is ambiguous (Content-Length together with Transfer-Encoding, chunked "
                    "twice, or Content-Length not one decimal number); expected either one Content-Length or "
                    "\"Transfer-Encoding: chunked\""};
        if (ec) return {State::Error, 400, fmt::format("malformed HTTP/1.1 request: {}", ec.message())};
        if (parser_->is_header_done() && !header_checked_) {
            header_checked_ = true;
            if (auto bad = check_framing()) return *bad;
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

std::optional<RequestReader::Outcome> RequestReader::check_framing() const {
    // RFC 9112 6.1-6.3: a request body's length comes from one "Transfer-Encoding: chunked" or from
    // Content-Length. Anything else is faulty framing, which a proxy in front of the KME might read
    // differently (request smuggling): refused, and the connection closed.
    const auto& h = parser_->get();
    std::vector<std::string_view> te;
    for (const auto& f : h)
        if (f.name() == http::field::transfer_encoding) te.emplace_back(f.value().data(), f.value().size());
    if (te.empty()) return std::nullopt;
    if (te.size() > 1)
        return Outcome{State::Error, 400,
                       fmt::format("Transfer-Encoding appears {} times; expected one \"Transfer-Encoding: chunked\"", te.size())};
    auto trim = [](std::string_view v) {
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
        return v;
    };
    const std::string_view v = trim(te[0]);
    const std::string shown(v.substr(0, 64));
    auto is_chunked = [](std::string_view x) { return boost::beast::iequals(boost::beast::string_view(x.data(), x.size()), "chunked"); };
    if (!is_chunked(v)) {
        const auto comma = v.rfind(',');
        const std::string_view last = trim(comma == std::string_view::npos ? v : v.substr(comma + 1));
        if (is_chunked(last))
            return Outcome{State::Error, 501,
                           fmt::format("transfer coding \"{}\" is not supported; expected \"Transfer-Encoding: chunked\" alone, "
                                       "or Content-Length",
                                       shown)};
        return Outcome{State::Error, 400,
                       fmt::format("Transfer-Encoding \"{}\" does not end in chunked, so the body has no length; expected "
                                   "\"Transfer-Encoding: chunked\" or Content-Length",
                                   shown)};
    }
    if (h.version() < 11)
        return Outcome{State::Error, 400, "Transfer-Encoding in an HTTP/1.0 request; send the body with Content-Length"};
    return std::nullopt;
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
                    if (!rest.empty() && rest[0] != '\r')
                        return bad(fmt::format("chunk data is not followed by CRLF (is the chunk size {} right?)", last_chunk_size_));
                    return {};
                }
                if (rest[0] != '\r' || rest[1] != '\n')
                    return bad(fmt::format("chunk data is not followed by CRLF (is the chunk size {} right?)", last_chunk_size_));
                begin_ += 2;
                chunk_ = Chunk::Size;
                continue;
            case Chunk::Size:
            case Chunk::Trailer: {
                const auto eol = rest.find("\r\n");
                // Without its CRLF yet, the line is what has come; a CR at the end may be the
                // first half of the CRLF, so it does not count (the same answer whole or split).
                std::size_t line_len = eol == std::string_view::npos ? rest.size() : eol;
                if (eol == std::string_view::npos && line_len > 0 && rest[line_len - 1] == '\r') --line_len;
                const std::string_view line = rest.substr(0, line_len);
                // No control characters other than HTAB in a line (a bare CR or LF included).
                for (const char ch : line) {
                    const auto u = static_cast<unsigned char>(ch);
                    if (u == '\n') return bad("a line ends in a bare LF; expected CRLF");
                    if ((u < 0x20 && u != '\t') || u == 0x7f)
                        return bad(fmt::format("control character 0x{:02x} in a {} line", u, chunk_ == Chunk::Size ? "chunk-size" : "trailer"));
                }
                if (chunk_ == Chunk::Size && line_len > kMaxChunkLine)
                    return bad(fmt::format("chunk-size line exceeds {} bytes", kMaxChunkLine));
                // The trailer section shares the header's limit.
                if (chunk_ == Chunk::Trailer && header_bytes_ + trailer_bytes_ + line_len + 2 > header_limit_)
                    return {State::Error, 431, fmt::format("request header and trailer section exceed {} bytes", header_limit_)};
                if (eol == std::string_view::npos) return {};
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
                        return bad(fmt::format("trailer line \"{}\" is not \"name: value\"", line.substr(0, 64)));
                    trailer_bytes_ += line.size() + 2;
                    continue;
                }
                std::uint64_t size = 0;
                std::size_t i = 0, digits = 0;
                for (; i < line.size(); ++i) {
                    const char ch = line[i];
                    int v;
                    if (ch >= '0' && ch <= '9') v = ch - '0';
                    else if (ch >= 'a' && ch <= 'f') v = ch - 'a' + 10;
                    else if (ch >= 'A' && ch <= 'F') v = ch - 'A' + 10;
                    else break;
                    if (size == 0 && v == 0) continue;  // leading zeros
                    if (++digits > 16) return bad("chunk size does not fit in 64 bits");
                    size = size * 16 + static_cast<std::uint64_t>(v);
                }
                if (i == 0) return bad(fmt::format("expected a hexadecimal chunk size, got \"{}\"", line.substr(0, 32)));
                // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ): ignored, but only after ';'.
                std::size_t j = i;
                while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
                if (j < line.size() ? line[j] != ';' : j > i)
                    return bad(fmt::format("expected CRLF or ';' and an extension after the chunk size, got \"{}\"", line.substr(i, 32)));
                if (size > body_limit_ - body_.size())
                    return {State::Error, 413, fmt::format("request body exceeds {} bytes", body_limit_)};
                if (size == 0) {
                    chunk_ = Chunk::Trailer;
                } else {
                    chunk_left_ = last_chunk_size_ = size;
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
