import GRDB
import Crypto
enum Placeholder {}
