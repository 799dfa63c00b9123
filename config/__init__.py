"""One validated configuration model, loaded from YAML with environment overrides (SPEC §4)."""

from anygate.config.loader import ConfigError, format_loc, load_config, parse_config
from anygate.config.model import (
    AnygateConfig,
    BreakerConfig,
    CacheConfig,
    Deployment,
    ModelKind,
    ModelRoute,
    PoolConfig,
    Priority,
    PriorityWeights,
    ProviderConfig,
    ProviderKind,
    QueueConfig,
    RedisConfig,
    RetentionConfig,
    ServerConfig,
    TenantConfig,
    TenantQuotas,
)
from anygate.config.secrets import SecretRef, SecretResolutionError

__all__ = [
    "AnygateConfig",
    "BreakerConfig",
    "CacheConfig",
    "ConfigError",
    "Deployment",
    "ModelKind",
    "ModelRoute",
    "PoolConfig",
    "Priority",
    "PriorityWeights",
    "ProviderConfig",
    "ProviderKind",
    "QueueConfig",
    "RedisConfig",
    "RetentionConfig",
    "SecretRef",
    "SecretResolutionError",
    "ServerConfig",
    "TenantConfig",
    "TenantQuotas",
    "format_loc",
    "load_config",
    "parse_config",
]
