"""One validated configuration model, loaded from YAML with environment overrides
(docs/operations.md#configuration)."""

from anygate.config.loader import ConfigError, format_loc, load_config, parse_config
from anygate.config.model import (
    TENANT_ID_PATTERN,
    AnygateConfig,
    AuthMode,
    BatchesConfig,
    BreakerConfig,
    BudgetWarningsConfig,
    CacheConfig,
    FilesConfig,
    LoggingConfig,
    MetricsConfig,
    PoolConfig,
    Priority,
    PriorityWeights,
    QueueConfig,
    RetentionConfig,
    SecurityConfig,
    TenantConfig,
    TenantQuotas,
    TenantSettings,
)
from anygate.config.providers import (
    Deployment,
    ModelKind,
    ModelRoute,
    ProviderConfig,
    ProviderKind,
)
from anygate.config.redis_settings import (
    RedisConfig,
    RedisSentinelConfig,
    RedisTLSConfig,
)
from anygate.config.secrets import SecretRef, SecretResolutionError
from anygate.config.server import (
    ConsoleConfig,
    ServerConfig,
    TlsConfig,
)

__all__ = [
    "TENANT_ID_PATTERN",
    "AnygateConfig",
    "AuthMode",
    "BatchesConfig",
    "BreakerConfig",
    "BudgetWarningsConfig",
    "CacheConfig",
    "ConfigError",
    "ConsoleConfig",
    "Deployment",
    "FilesConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ModelKind",
    "ModelRoute",
    "PoolConfig",
    "Priority",
    "PriorityWeights",
    "ProviderConfig",
    "ProviderKind",
    "QueueConfig",
    "RedisConfig",
    "RedisSentinelConfig",
    "RedisTLSConfig",
    "RetentionConfig",
    "SecretRef",
    "SecretResolutionError",
    "SecurityConfig",
    "ServerConfig",
    "TenantConfig",
    "TenantQuotas",
    "TenantSettings",
    "TlsConfig",
    "format_loc",
    "load_config",
    "parse_config",
]
