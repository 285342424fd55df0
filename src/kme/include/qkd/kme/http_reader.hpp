#pragma once
// HTTP/1.1 requests from a byte stream, without I/O: the server decrypts TLS records into the
// reader's buffer and asks it for complete requests. Beast's parser reads the header and
// Content-Length bodies; chunked bodies (RFC 9112 7.1) are decoded here, because Boost 1.74's chunk
// parser asserts on some malformed trailers that arrive in pieces (found by fuzzing). The reader
// enforces the header limit (trailers included) and the body limit, keeps bytes that belong to the
// next request (pipelining) and says when a client waits for "100 Continue".
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>
#include <optional>
#include <span>
#include <string>

namespace qkd::kme {

class RequestReader {
public:
    using Request = boost::beast::http::request<boost::beast::http::string_body>;

    RequestReader(std::size_t header_limit, std::size_t body_limit);
    RequestReader(const RequestReader&) = delete;
    RequestReader& operator=(const RequestReader&) = delete;
    ~RequestReader();

    // Room for at least `min` more bytes at the end of the buffer; after reading into it, commit().
    std::span<char> prepare(std::size_t min = 16384);
    void commit(std::size_t n);

    enum class State { NeedMore, Done, Error };
    struct Outcome {
        State state = State::NeedMore;
        unsigned status = 0;  // with Error: 400, 413, 431 or 501
        std::string message;  // with Error: what was wrong
    };
    // Parses what is buffered. Done: take() the request. Error: answer `status` and close.
    Outcome parse();
    // After Done: the request; the reader starts on the next one (bytes already read are kept).
    Request take();
    // True once per request whose header asked for "Expect: 100-continue" while its body is
    // still to come: the server should send "HTTP/1.1 100 Continue" now.
    bool continue_due();
    // Bytes of the next request already buffered, and whether a request has started at all.
    std::size_t buffered() const { return end_ - begin_; }
    bool idle() const { return buffered() == 0 && !started_; }

    // Longest chunk-size line (size and extensions) accepted; longer ones get 400.
    static constexpr std::size_t kMaxChunkLine = 4096;

private:
    enum class Chunk { Size, Data, DataEnd, Trailer, Done };
    void reset_parser();
    Outcome parse_chunked();
    std::optional<Outcome> check_framing() const;
    bool body_done() const { return chunked_ ? chunk_ == Chunk::Done : parser_->is_done(); }
    std::size_t header_limit_, body_limit_;
    std::string buf_;
    std::size_t begin_ = 0, end_ = 0;
    std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
    bool started_ = false;
    bool continue_sent_ = false;
    bool header_checked_ = false;
    // A chunked body, decoded by parse_chunked().
    bool chunked_ = false;
    Chunk chunk_ = Chunk::Size;
    std::uint64_t chunk_left_ = 0;    // bytes of the current chunk still to come
    std::size_t header_bytes_ = 0;    // of this request's header
    std::size_t trailer_bytes_ = 0;   // header and trailers share the header limit
    std::uint64_t last_chunk_size_ = 0;  // for error messages
    std::string body_;
};

}  // namespace qkd::kme
