import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A minimal HTTPS/1.1 client for the KME benchmarks: one kept-alive connection with mutual
/// TLS, requests one after another (the server answers in order).
final class HTTPSConnection: @unchecked Sendable {
    struct Response {
        var status: Int
        var body: [UInt8]
    }

    /// Collects responses and hands each to the oldest waiting request; touched only on the
    /// channel's event loop.
    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        var waiting = CircularBuffer<EventLoopPromise<Response>>()
        var status = 0
        var body: [UInt8] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                status = Int(head.status.code)
                body.removeAll(keepingCapacity: true)
            case .body(var buffer):
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                if !waiting.isEmpty { waiting.removeFirst().succeed(Response(status: status, body: body)) }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            while !waiting.isEmpty { waiting.removeFirst().fail(error) }
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            while !waiting.isEmpty { waiting.removeFirst().fail(ChannelError.ioOnClosedChannel) }
        }
    }

    let channel: any Channel
    let collector: Collector
    let host: String

    private init(channel: any Channel, collector: Collector, host: String) {
        self.channel = channel
        self.collector = collector
        self.host = host
    }

    static func connect(host: String, port: Int, ca: String, certificate: String, key: String,
                        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> HTTPSConnection {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(ca)
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        let context = try NIOSSLContext(configuration: tls)
        let collector = Collector()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(ChannelOptions.socket(SocketOptionLevel(IPPROTO_TCP), TCP_NODELAY), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: host, port: port).get()
        return HTTPSConnection(channel: channel, collector: collector, host: "\(host):\(port)")
    }

    /// One request; POST when `body` is given.
    func request(_ uri: String, body: [UInt8]? = nil) async throws -> Response {
        let channel = self.channel, collector = self.collector, host = self.host
        return try await channel.eventLoop.flatSubmit { () -> EventLoopFuture<Response> in
            let promise = channel.eventLoop.makePromise(of: Response.self)
            collector.waiting.append(promise)
            var head = HTTPRequestHead(version: .http1_1, method: body == nil ? .GET : .POST, uri: uri)
            head.headers.add(name: "Host", value: host)
            if let body {
                head.headers.add(name: "Content-Type", value: "application/json")
                head.headers.add(name: "Content-Length", value: "\(body.count)")
            }
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            return promise.futureResult
        }.get()
    }

    func close() async {
        try? await channel.close()
    }
}
